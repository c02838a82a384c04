"""Figures of chapters 5, 7 and 8: learning curves, losses, the sensitivity map, priorities and
the offline diagnostics.

Every function draws one figure sized for the book's text column (``WIDTH`` inches at 100 dpi, so
a figure is shown at its natural size and its labels stay readable) and returns it; the chapter
calls it in a collapsed cell and the figure appears on the page. Nothing here trains or evaluates:
the functions only read the logs and arrays the chapters computed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from iql_tutorial.viz.style import book_style

# The width of the book's text column in inches at the notebooks' 100 dpi.
WIDTH = 7.2
# Colours of the two methods in every figure of these chapters.
COLORS = {"IQL": "C0", "BC": "C1"}


def score_label(reference: str) -> str:
    """The y-axis label of a normalized score whose 100 is ``reference``'s mean return."""
    return f"normalized score\n(0 = random, 100 = {reference})"


def use_book_style() -> None:
    """The book's one style (:func:`iql_tutorial.viz.style.book_style`), called once by a chapter's
    set-up cell."""
    book_style()


def scratch_vs_package(track: pd.DataFrame) -> Figure:
    """Chapter 5: the three losses of the from-scratch update and of ``IQLAgent.update``, step by
    step, and the largest parameter difference between the two.

    ``track`` has a ``step`` column, ``<loss> (package)`` and ``<loss> (scratch)`` columns for
    ``value_loss``, ``critic_loss`` and ``actor_loss``, and ``max_param_diff``."""
    fig, axes = plt.subplots(2, 2, layout="constrained", figsize=(WIDTH, 5.2))
    for ax, key in zip(axes.flat, ("value_loss", "critic_loss", "actor_loss"), strict=False):
        ax.plot(track["step"], track[f"{key} (package)"], lw=3, alpha=0.5, label="IQLAgent.update")
        ax.plot(track["step"], track[f"{key} (scratch)"], lw=1, color="k", ls="--", label="from scratch")
        ax.set(xlabel="gradient steps", ylabel="loss", title=key.replace("_", " "))
        if key != "actor_loss":
            ax.set_yscale("log")
    # below the panels, off the curves
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", ncol=2, fontsize=9)
    ax = axes[1, 1]
    ax.semilogy(track["step"], track["max_param_diff"].clip(lower=1e-10))
    ax.set(xlabel="gradient steps", ylabel="max |difference|", title="largest parameter difference")
    return fig


def iql_vs_bc(
    results: Mapping[tuple[str, str], Any], datasets: Sequence[str], ylabel: str, title: str = "Pendulum"
) -> Figure:
    """Chapter 5: the evaluation curves of IQL and BC, one panel per dataset, with the dataset's
    mean and best episode score as horizontal lines.

    ``results[dataset_name, method]`` is a ``TrainResult`` (its ``eval_log`` and ``dataset``);
    the bands are one standard deviation over the evaluation episodes."""
    fig, axes = plt.subplots(1, len(datasets), layout="constrained", figsize=(WIDTH, 3.6), sharey=True)
    for ax, data_name in zip(np.atleast_1d(axes), datasets, strict=True):
        d = results[data_name, "IQL"].dataset
        data_scores = d.normalized_score(d.episode_returns)
        for name, color in COLORS.items():
            e = results[data_name, name].eval_log
            mean, std = e["score_mean"], e["score_std"]
            ax.plot(e["step"], mean, "-o", ms=4, color=color, label=name)
            ax.fill_between(e["step"], mean - std, mean + std, color=color, alpha=0.15)
        ax.axhline(data_scores.mean(), color="gray", ls="--", label="dataset mean")
        ax.axhline(data_scores.max(), color="gray", ls=":", label="best dataset episode")
        ax.set(xlabel="gradient steps", title=f"{title} {data_name}")
    first = np.atleast_1d(axes)[0]
    first.set_ylabel(ylabel)
    # below the panels, off the curves and their bands
    fig.legend(*first.get_legend_handles_labels(), loc="outside lower center", ncol=4, fontsize=9)
    return fig


def training_losses(results: Mapping[tuple[str, str], Any]) -> Figure:
    """Chapter 5: the logged losses (``train_log``) and the mean of V of every run; IQL blue, BC
    orange, one line style per dataset."""
    panels = (
        ("value_loss", "value loss, Eq. (5)"),
        ("critic_loss", "critic loss, Eq. (6)"),
        ("actor_loss", "actor loss, Eq. (7)"),
        ("v_mean", "mean V(s) over the batch"),
    )
    styles = ("-", "--", ":", "-.")
    data_names = list(dict.fromkeys(data_name for data_name, _ in results))
    fig, axes = plt.subplots(2, 2, layout="constrained", figsize=(WIDTH, 5.4))
    for (data_name, name), r in results.items():
        style = {"color": COLORS[name], "ls": styles[data_names.index(data_name)]}
        for ax, (key, title) in zip(axes.flat, panels, strict=True):
            ax.plot(r.train_log["step"], r.train_log[key], label=f"{name}, {data_name}", **style)
            ax.set(xlabel="gradient steps", title=title)
    for ax in axes[0]:
        ax.set(yscale="log", ylabel="loss")
    axes[1, 0].set_ylabel("loss")
    axes[1, 1].set_ylabel("V (normalized reward units)")
    # below the panels, off the curves
    fig.legend(*axes[1, 1].get_legend_handles_labels(), loc="outside lower center", ncol=2, fontsize=9)
    return fig


def value_heads(
    theta: np.ndarray, theta_dot: np.ndarray, v: np.ndarray, data_theta: np.ndarray, data_theta_dot: np.ndarray
) -> Figure:
    """Chapter 7: the two value heads of the two-component Pendulum agent over a grid of angles
    and velocities (``v`` of shape ``[*grid, 2]``), and where the dataset's states are. A white
    contour (and a white mark on the colour bar) shows where a head falls below 0."""
    xlabel, ylabel = r"angle $\theta$ (rad, 0 = upright)", r"$\dot\theta$ (rad/s)"
    fig, axes = plt.subplots(1, 3, layout="constrained", figsize=(WIDTH, 2.9), sharey=True)
    for ax, k, title in ((axes[0], 0, "angle cost head"), (axes[1], 1, "effort cost head")):
        im = ax.pcolormesh(theta, theta_dot, v[..., k], cmap="viridis", shading="auto")
        cbar = fig.colorbar(im, ax=ax, orientation="horizontal", pad=0.02, label="cost-to-go (normalized)")
        if v[..., k].min() < 0 < v[..., k].max():
            # where the head is negative, which a cost-to-go never is: a white contour at 0
            ax.contour(theta, theta_dot, v[..., k], levels=[0.0], colors="w", linewidths=1.2)
            cbar.ax.axvline(0.0, c="w", lw=1.2)
        ax.set(xlabel=xlabel, title=title)
    axes[2].hist2d(data_theta, data_theta_dot, bins=[60, 50], range=[[-np.pi, np.pi], [-8, 8]], cmap="Greys")
    axes[2].set(xlabel=xlabel, title="the dataset's states")
    axes[0].set_ylabel(ylabel)
    return fig


def sensitivity(
    grid: pd.DataFrame,
    taus: Sequence[float],
    betas: Sequence[float],
    live: Mapping[str, float] | None = None,
    live_tau: float = 0.7,
) -> Figure:
    """Chapter 7's tau x beta map and one of its rows, seed by seed.

    ``grid`` has one row per learner and seed: ``policy`` (IQL or BC), ``expectile`` and ``beta``
    (empty for BC), ``seed``, ``score_mean``. Left: the score of every (tau, beta) cell, averaged
    over the seeds that every cell has (with its standard error when there are several), BC's
    over the same seeds in the title. Right: the row ``live_tau`` and BC, every seed a dot, their
    mean a black bar, and ``live`` (scores by column label: ``"BC"`` and the betas as
    ``f"{beta:g}"``) as red stars."""
    iql_all, bc_all = grid[grid["policy"] == "IQL"], grid[grid["policy"] == "BC"]
    per_cell = iql_all.groupby(["expectile", "beta"])["seed"].apply(set)
    common = sorted(set.intersection(*per_cell))
    iql = iql_all[iql_all["seed"].isin(common)]
    bc = bc_all[bc_all["seed"].isin(common)]["score_mean"]
    cells = iql.groupby(["expectile", "beta"])["score_mean"]
    mean = cells.mean().unstack().loc[list(taus), list(betas)].to_numpy()
    se = (cells.std() / np.sqrt(cells.count())).unstack().loc[list(taus), list(betas)].to_numpy()
    several = len(common) > 1
    fig, axes = plt.subplots(1, 2, layout="constrained", figsize=(WIDTH, 3.8), width_ratios=[1.1, 1])
    ax = axes[0]
    lo, hi = min(mean.min(), bc.mean()), max(mean.max(), bc.mean())
    im = ax.imshow(mean, cmap="viridis", aspect="auto", vmin=lo, vmax=hi)
    for i in range(len(taus)):
        for j in range(len(betas)):
            dark = mean[i, j] < lo + 0.6 * (hi - lo + 1e-9)
            text = f"{mean[i, j]:.0f}\n± {se[i, j]:.0f}" if several else f"{mean[i, j]:.0f}"
            ax.text(j, i, text, ha="center", va="center", color="w" if dark else "k", fontsize=9)
    ax.set_xticks(range(len(betas)), [f"{b:g}" for b in betas])
    ax.set_yticks(range(len(taus)), [f"{t:g}" for t in taus])
    if several:
        bc_text = f"BC: {bc.mean():.1f} ± {bc.std() / np.sqrt(len(bc)):.1f}"
        title = f"IQL, mean ± s.e. of {len(common)} seeds\n({bc_text})"
    else:
        title = f"IQL, seed {common[0]}\n(BC, the same seed: {bc.mean():.0f})"
    ax.set(xlabel=r"inverse temperature $\beta$", ylabel=r"expectile $\tau$", title=title)
    fig.colorbar(im, ax=ax, label="normalized score")
    ax = axes[1]
    labels = ["BC", *[f"{b:g}" for b in betas]]
    row = iql_all[iql_all["expectile"] == live_tau]
    bc_row = bc_all[bc_all["seed"].isin(row["seed"])]["score_mean"]
    columns = [bc_row.to_numpy(), *[row[row["beta"] == b]["score_mean"].to_numpy() for b in betas]]
    for x, values in enumerate(columns):
        color = COLORS["BC"] if x == 0 else COLORS["IQL"]
        ax.plot(np.full(len(values), x), values, "o", c=color, alpha=0.6, ms=6)
        ax.plot([x - 0.25, x + 0.25], [values.mean()] * 2, c="k", lw=2)
    if live is not None:
        ax.plot(range(len(labels)), [live[k] for k in labels], "*", c="tab:red", ms=12)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_xlim(-0.6, len(labels) - 0.4)
    ax.set(
        xlabel=r"inverse temperature $\beta$ (BC: $\beta = 0$)",
        title=rf"$\tau$ = {live_tau:g}: the score, seed by seed",
    )
    handles = [
        plt.Line2D([], [], ls="", marker="o", c="gray", alpha=0.6, label="one committed seed"),
        plt.Line2D([], [], c="k", lw=2, label="mean of the committed seeds"),
    ]
    if live is not None:
        handles.append(plt.Line2D([], [], ls="", marker="*", c="tab:red", ms=12, label="this page's run"))
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=9)
    return fig


def priorities(
    priority: np.ndarray,
    uniform_draws: np.ndarray,
    prioritized_draws: np.ndarray,
    theta: np.ndarray,
    theta_dot: np.ndarray,
    alpha: float,
) -> Figure:
    """Chapter 7: the priorities of the whole dataset and of what each sampler drew (left; the
    draws rescaled to the dataset's size), and where in the state space they are (right)."""
    positive = priority[priority > 0]
    bins = np.logspace(np.log10(max(positive.min(), 1e-4)), np.log10(priority.max()), 60)
    fig, axes = plt.subplots(1, 2, layout="constrained", figsize=(WIDTH, 3.7))
    ax = axes[0]
    ax.hist(priority, bins=bins, color="gray", alpha=0.6, label="whole dataset")
    for draws, label in ((uniform_draws, "uniform draws"), (prioritized_draws, f"prioritized, α = {alpha:g}")):
        scale = np.full(len(draws), len(priority) / len(draws))
        ax.hist(priority[draws], bins=bins, histtype="step", lw=2, label=label, weights=scale)
    ax.set(xscale="log", xlabel="priority = sqrt(critic loss)", ylabel="transitions")
    fig.legend(loc="outside lower center", ncol=3, fontsize=9)  # off the histograms
    sc = axes[1].scatter(theta, theta_dot, c=priority, s=2, cmap="magma", norm=LogNorm())
    fig.colorbar(sc, ax=axes[1], label="priority")
    axes[1].set(xlabel=r"angle $\theta$ (rad, 0 = upright)", ylabel=r"$\dot\theta$ (rad/s)")
    return fig


def offline_diagnostics(runs: Mapping[str, Any], behaviour_score: float, ylabel: str) -> Figure:
    """Chapter 8: (a) the score in the simulator (bars: one standard deviation over the evaluation
    episodes), (b) the critics' losses on held-out episodes, (c) and (d) the policies' plain and
    advantage-weighted log-likelihoods of the held-out actions; one legend below the panels.

    ``runs`` maps a method's name (``"IQL"``, ``"BC"``) to its ``TrainResult``."""
    fig, axes = plt.subplots(2, 2, layout="constrained", figsize=(WIDTH, 6.4))
    ax = axes[0, 0]
    for name, r in runs.items():
        e = r.eval_log
        ax.errorbar(
            e["step"], e["score_mean"], yerr=e["score_std"], marker="o", capsize=3, color=COLORS[name], label=name
        )
    ax.axhline(behaviour_score, color="grey", ls="--", label="logged behaviour (a)")
    ax.set(xlabel="gradient steps", ylabel=ylabel, title="(a) score in the simulator")
    ax = axes[0, 1]
    d = next(iter(runs.values())).diag_log
    ax.plot(d["step"], d["td_error"], "o-", color="C2", label="TD error (b)")
    ax.plot(d["step"], d["expectile_loss"], "s-", color="C4", label="expectile loss (b)")
    ax.set(
        xlabel="gradient steps",
        yscale="log",
        ylabel="loss (normalized units²)",
        title="(b) critics, held-out episodes",
    )
    for ax, col, title in (
        (axes[1, 0], "log_likelihood", "(c) log π of held-out actions"),
        (axes[1, 1], "weighted_log_likelihood", "(d) the same, weighted by exp(βA)"),
    ):
        for name, r in runs.items():
            ax.plot(r.diag_log["step"], r.diag_log[col], "o-", color=COLORS[name], label=name)
        ax.set(xlabel="gradient steps", ylabel="nats per action", title=title)
    # one legend, below the panels (off the data): the methods' colours, then the lines of (a), (b)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    more = axes[0, 1].get_legend_handles_labels()
    fig.legend(handles + more[0], labels + more[1], loc="outside lower center", ncol=3, fontsize=9)
    return fig
