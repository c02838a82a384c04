"""The figures of chapters 1 to 4 and of the dataset card, kept out of the pages.

Every function takes the numbers a chapter computed and returns the figure (the chapter's
``hide-input`` cell calls it and shows it). Sizes are made for the book's text column: about
7.5 inches wide at 100 dpi, so a figure is shown at close to its natural size, with text of at
least 9 pt. ``book_style()`` (the book's one style, :mod:`iql_tutorial.viz.style`) sets those
defaults; every chapter calls it in its setup cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from iql_tutorial.viz.maze import draw_maze
from iql_tutorial.viz.style import WIDTH
from iql_tutorial.viz.style import book_style as book_style  # the chapters call plots.book_style()

# --- chapter 1 ----------------------------------------------------------------------------------


def _data_histogram(ax: Any, actions: np.ndarray, color: str) -> None:
    hist_ax = ax.twinx()
    hist_ax.hist(actions, bins=40, range=(-1, 1), color=color, alpha=0.25)
    hist_ax.set_ylabel("dataset actions (count)", color=color)
    ax.set_zorder(hist_ax.get_zorder() + 1)
    ax.patch.set_visible(False)


def ch01_max_target(
    a_grid: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    true_reward: np.ndarray,
    curves_max: np.ndarray,
    q_star: np.ndarray,
    best_in_data: float,
) -> Figure:
    """Left: the first fit of the reward against the data; right: the max-target critic over iterations."""
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 3.6))
    ax = axes[0]
    ax.scatter(actions, rewards, s=6, alpha=0.35, color="gray", label="data $(a_i, r_i)$")
    ax.plot(a_grid, true_reward, "k-", lw=2, label="true $r(a)$")
    ax.plot(a_grid, curves_max[0], color="C3", lw=2, label="critic, iteration 1")
    ax.axvspan(best_in_data, 1.0, color="C3", alpha=0.06, label="no data")
    _data_histogram(ax, actions, "C0")
    ax.set(xlabel="action $a$", ylabel="reward / Q-value", title="One regression: accurate in the data only")
    ax.set_ylim(-5, 3.5)
    ax.legend(loc="lower right", fontsize=9)
    ax = axes[1]
    n = len(curves_max)
    for k, color in zip([0, n // 4, n // 2, n - 1], ["C1", "C2", "C4", "C3"], strict=True):
        ax.plot(a_grid, curves_max[k], color=color, lw=2, label=f"iteration {k + 1}")
    ax.plot(a_grid, q_star, "k--", lw=1.5, label=r"true $Q^*(a)$")
    ax.axvspan(best_in_data, 1.0, color="C3", alpha=0.06)
    ax.set(xlabel="action $a$", ylabel="Q-value", title="Max target (Eq. 1) over iterations")
    ax.legend(fontsize=9)
    return fig


def ch01_targets(
    iterations: np.ndarray,
    estimates: Sequence[tuple[np.ndarray, str, str]],
    references: Sequence[tuple[float, str, str, str]],
    a_grid: np.ndarray,
    final_critics: Sequence[tuple[np.ndarray, str, str]],
    actions: np.ndarray,
    best_in_data: float,
) -> Figure:
    """Top: each target's estimate of the state's value over the iterations, with the true returns;
    bottom: the final critics over the action range.

    ``estimates``: (values per iteration, colour, label); ``references``: (value, colour, line
    style, label); ``final_critics``: (Q on ``a_grid``, colour, label).
    """
    fig, axes = plt.subplots(2, 1, figsize=(WIDTH, 6.6), height_ratios=[1.1, 1])
    ax = axes[0]
    for values, color, label in estimates:
        ax.plot(iterations, values, color=color, lw=2, label=label)
    for value, color, style, label in references:
        ax.axhline(value, color=color, ls=style, lw=1.3, label=label)
    ax.set(
        xlabel="fitted Q-iteration (iterations)",
        ylabel="value of the state",
        title="Estimated value of the state during training",
    )
    ax.legend(fontsize=9, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax = axes[1]
    for curve, color, label in final_critics:
        ax.plot(a_grid, curve, color=color, lw=2, label=label)
    ax.axvspan(best_in_data, 1.0, color="C3", alpha=0.06, label="no data here")
    _data_histogram(ax, actions, "gray")
    ax.set(xlabel="action $a$", ylabel="Q-value", title=f"Final critics after {len(iterations)} iterations")
    ax.legend(fontsize=9, loc="center left", bbox_to_anchor=(1.12, 0.5))
    return fig


# --- chapter 2 ----------------------------------------------------------------------------------


def _legend_below(ax: Any, ncol: int = 2, offset: float = 0.2) -> None:
    """The axes' legend under its x label, off the data (constrained layout makes room for it)."""
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -offset), ncol=ncol, frameon=False)


def _legend_right(ax: Any) -> None:
    """The axes' legend to the right of the axes, off the data."""
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)


def ch02_loss_shapes(u: np.ndarray, losses: Sequence[tuple[float, np.ndarray]], quantile_09: np.ndarray) -> Figure:
    """The asymmetric squared loss for several tau, and the quantile loss for tau = 0.9."""
    fig, ax = plt.subplots(figsize=(WIDTH, 3.4))
    for (tau, loss), color in zip(losses, ["C0", "k", "C1", "C3"], strict=False):
        ax.plot(u, loss, color=color, lw=2, label=rf"$L_2^\tau$, $\tau = {tau}$")
    ax.plot(u, quantile_09, color="C3", ls="--", lw=1.2, label=r"quantile loss, $\tau = 0.9$")
    ax.axvline(0, color="gray", lw=0.8)
    ax.set(
        xlabel="residual $u$ = target $-$ prediction",
        ylabel="loss",
        title="The asymmetric squared loss (Eq. 3)",
        ylim=(0, 2.5),
    )
    _legend_right(ax)
    return fig


def ch02_expectiles(
    x: np.ndarray,
    shown: Sequence[tuple[float, float, float]],
    tau_fine: np.ndarray,
    expectile_fine: np.ndarray,
    quantile_fine: np.ndarray,
    taus: np.ndarray,
    expectile_gd: np.ndarray,
) -> Figure:
    """Left: the samples with some expectiles (solid) and quantiles (dotted); right: both against tau.

    ``shown``: (tau, expectile, quantile) for the vertical lines of the left panel.
    """
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 4.6))
    ax = axes[0]
    ax.hist(x, bins=80, density=True, color="gray", alpha=0.45, label="samples of $X$")
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(shown)))
    for (tau, e, q), c in zip(shown, colors, strict=True):
        ax.axvline(e, color=c, lw=2.2, label=rf"$\tau = {tau}$: {e:.2f}")
        ax.axvline(q, color=c, lw=1.2, ls=":")
    ax.plot([], [], color="gray", ls=":", label="quantile, same $\\tau$")
    ax.set(xlabel="$x$", ylabel="density", title="Expectiles (solid) of a skewed $X$")
    _legend_below(ax)
    ax = axes[1]
    ax.plot(tau_fine, expectile_fine, color="C2", lw=2, label="expectile (bisection)")
    ax.plot(taus, expectile_gd, "o", color="C2", mfc="none", ms=7, label="expectile (gradient)")
    ax.plot(tau_fine, quantile_fine, color="C1", lw=1.5, ls="--", label="quantile")
    ax.axhline(x.mean(), color="k", lw=1, ls=":", label="mean")
    ax.axhline(x.max(), color="C3", lw=1, ls=":", label="largest sample")
    ax.set(xlabel=r"$\tau$", ylabel=r"$m_\tau$", title=r"Expectiles and quantiles against $\tau$")
    _legend_below(ax)
    return fig


def maze_scatter(layout: Any, xy: np.ndarray, title: str) -> Figure:
    """Positions drawn as dots on the maze."""
    fig, ax = plt.subplots(figsize=(3.8, 3.8))
    ax.scatter(xy[:, 0], xy[:, 1], s=1, alpha=0.3, color="C0")
    draw_maze(ax, layout)
    ax.set_title(title)
    return fig


def ch02_value_maps(
    layout: Any,
    maps: Sequence[tuple[np.ndarray, str]],
    v_star: np.ndarray,
    excess: np.ndarray,
) -> Figure:
    """Top row: the value maps (walls masked); bottom: V* and the last map minus V*.

    ``maps``: (image [res, res] with NaN in walls, title); ``v_star`` and ``excess`` are images on
    the V* lattice (NaN where the point cannot be).
    """
    fig, axes = plt.subplots(2, 3, figsize=(WIDTH, 5.4))
    extent = layout.extent
    for ax, (img, title) in zip(axes[0], maps, strict=True):
        ax.set_facecolor("0.35")
        im = ax.imshow(np.ma.masked_invalid(img), origin="lower", extent=extent, cmap="magma", vmin=0, vmax=1)
        draw_maze(ax, layout, fontsize=9, axis_labels=False)
        ax.set_title(title)
    axes[1, 0].set_facecolor("0.35")
    axes[1, 0].imshow(np.ma.masked_invalid(v_star), origin="lower", extent=extent, cmap="magma", vmin=0, vmax=1)
    draw_maze(axes[1, 0], layout, fontsize=9, axis_labels=False)
    axes[1, 0].set_title(r"optimal $V^*(s)$")
    fig.colorbar(im, ax=axes[0, :], shrink=0.9, label="value (both rows)")
    lim = max(float(np.nanmax(np.abs(excess))), 1e-3)
    ax = axes[1, 1]
    ax.set_facecolor("0.35")
    im2 = ax.imshow(np.ma.masked_invalid(excess), origin="lower", extent=extent, cmap="RdBu_r", vmin=-lim, vmax=lim)
    draw_maze(ax, layout, fontsize=9, axis_labels=False)
    ax.set_title(maps[-1][1].split(",")[-1].strip() + r": $V_\psi - V^*$")
    cax = axes[1, 2].inset_axes([0.05, 0.08, 0.07, 0.84])
    fig.colorbar(im2, cax=cax, label=r"$V_\psi - V^*$ (red: above $V^*$)")
    axes[1, 2].axis("off")
    return fig


def ch02_training(
    steps: Sequence[int],
    v_start: np.ndarray,
    taus: Sequence[float],
    v_star_start: float,
    loss_v: Sequence[float],
    loss_q: Sequence[float],
) -> Figure:
    """Left: the value of the start state during training, one curve per tau; right: the losses."""
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 3.6))
    for e, tau in enumerate(taus):
        axes[0].plot(steps, v_start[:, e], lw=2, label=rf"$\tau = {tau:.1f}$")
    axes[0].axhline(v_star_start, color="k", ls=":", label=r"optimal $V^*$")
    axes[0].set(xlabel="gradient steps", ylabel=r"$V_\psi$(start)", title="Value of the start state")
    _legend_below(axes[0])
    axes[1].plot(steps, loss_v, label="value loss $L_V$")
    axes[1].plot(steps, loss_q, label="critic loss $L_Q$")
    axes[1].set(xlabel="gradient steps", ylabel="loss (one batch, summed)", yscale="log", title="Training losses")
    _legend_below(axes[1])
    return fig


# --- chapter 3 ----------------------------------------------------------------------------------


def ch03_truncation(mean_reward: np.ndarray, return_to_go: np.ndarray, steady: float) -> Figure:
    """Left: the mean reward per step of the pendulum episodes; right: the return-to-go cut at the limit."""
    fig, ax = plt.subplots(1, 2, figsize=(WIDTH, 3.3))
    ax[0].plot(mean_reward, color="C0")
    ax[0].set(xlabel="time step in the episode", ylabel="reward", title="Mean reward per step")
    ax[1].plot(return_to_go, color="C3", label="return-to-go, cut at the limit")
    ax[1].axhline(steady, color="k", ls="--", label=r"$\bar r / (1-\gamma)$, no cut")
    ax[1].set(
        xlabel="time step in the episode",
        ylabel="discounted return-to-go",
        title=r"Truncation is not an end ($\gamma = 0.99$)",
    )
    _legend_below(ax[1], ncol=1)
    return fig


def ch03_timing(ns: Sequence[int], ms: dict[tuple[int, str], list[float]], widths: Sequence[int]) -> Figure:
    """Bars of the time per forward + backward pass, loop against batched, one panel per width."""
    fig, axes = plt.subplots(1, len(widths), figsize=(WIDTH, 3.4))
    xpos = np.arange(len(ns))
    for ax, wd in zip(np.atleast_1d(axes), widths, strict=True):
        lo, ba = ms[wd, "loop"], ms[wd, "batched"]
        ax.bar(xpos - 0.2, lo, 0.4, label="loop over N MLPs")
        ax.bar(xpos + 0.2, ba, 0.4, label="one batched module")
        for i in range(len(ns)):
            ax.text(xpos[i], max(lo[i], ba[i]) * 1.03, f"{lo[i] / ba[i]:.2f}x", ha="center", fontsize=9)
        ax.set_xticks(xpos, [f"N = {n}" for n in ns])
        ax.set_ylim(0, 1.25 * max(max(lo), max(ba)))
        ax.set(ylabel="ms per forward + backward", title=f"hidden {wd}x{wd}, batch 256, 1 thread")
    handles, labels = np.atleast_1d(axes)[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=2, frameon=False)
    return fig


def ch03_min_bias(
    grid: np.ndarray,
    q_star: np.ndarray,
    critics: np.ndarray,
    a_data: np.ndarray,
    y_data: np.ndarray,
    bias: Any,
) -> Figure:
    """Left: a few critics fitted to noisy samples and their min; right: the bias of the min against N.

    ``critics`` [n, G]; ``bias``: a DataFrame with columns setting, N, greedy bias, bias at a fixed
    action.
    """
    fig, ax = plt.subplots(1, 2, figsize=(WIDTH, 4.6))
    ax[0].plot(grid, q_star, "k", lw=2, label=r"true $Q^*(a)$")
    for i, curve in enumerate(critics):
        ax[0].plot(grid, curve, lw=0.8, alpha=0.7, label=f"{len(critics)} critics" if i == 0 else None)
    ax[0].plot(grid, critics.min(0), "C3", lw=2.5, label=f"min of the {len(critics)}")
    ax[0].scatter(a_data, y_data, s=16, c="k", zorder=3, label="targets of critic 1")
    ax[0].set(xlabel="action a", ylabel="Q(a)", title="Critics fitted to 12 noisy samples", ylim=(-2.5, 2.5))
    _legend_below(ax[0], offset=0.14)
    for setting, style in (("shared data", "-o"), ("independent errors", "-s")):
        d = bias[bias.setting == setting]
        ax[1].plot(d.N, d["greedy bias"], style, color="C3", label=f"greedy, {setting}")
        ax[1].plot(d.N, d["bias at a fixed action"], style, color="C0", label=f"fixed action, {setting}")
    ax[1].axhline(0, color="k", lw=0.8)
    ax[1].set(
        xlabel="replicas N in the min",
        ylabel="bias (estimate $-$ truth)",
        title="Bias of the min over N replicas",
        xticks=sorted(set(bias.N)),
    )
    _legend_below(ax[1], ncol=1, offset=0.14)
    return fig


def ch03_polyak(
    t_ax: np.ndarray,
    source: np.ndarray,
    followed: dict[tuple[float, int], np.ndarray],
    trace: Any,
) -> Figure:
    """Left: Polyak averaging of a made-up source; middle, right: a critic weight and mean Q with their targets.

    On the left each rate has its own line style (solid, dashed, dotted, in the order of
    ``followed``) and the later lines are drawn thinner on top, so curves that coincide stay visible.
    """
    fig, ax = plt.subplots(1, 3, figsize=(WIDTH, 3.6))
    ax[0].plot(t_ax, source, color="0.6", lw=4, label="source")
    styles = [("C0", "-", 3.0), ("C1", "--", 1.6), ("C2", ":", 2.0)]
    for ((tau_t, period), out), (color, style, width) in zip(followed.items(), styles, strict=False):
        every = "every step" if period == 1 else f"every {period} steps"
        ax[0].plot(
            t_ax, out, color=color, ls=style, lw=width, label=rf"$\tau_{{\mathrm{{target}}}}$ = {tau_t:g}, {every}"
        )
    ax[0].set(xlabel="gradient steps", ylabel="parameter", title="A made-up source")
    _legend_below(ax[0], ncol=1)
    ax[1].plot(trace.step, trace["w"], label="critic 1")
    ax[1].plot(trace.step, trace["w target"], ls="--", label="its target copy")
    ax[1].set(xlabel="gradient steps", ylabel="weight value", title="One weight of critic 1")
    _legend_below(ax[1], ncol=1)
    ax[2].plot(trace.step, trace["Q"], label="critic 1")
    ax[2].plot(trace.step, trace["Q target"], ls="--", label="its target copy")
    ax[2].set(xlabel="gradient steps", ylabel="mean Q, fixed batch", title="Mean Q of critic 1")
    _legend_below(ax[2], ncol=1)
    return fig


# --- chapter 4 ----------------------------------------------------------------------------------


def ch04_weights(
    adv_axis: np.ndarray,
    weights: Sequence[tuple[float, np.ndarray]],
    a_axis: np.ndarray,
    targets: Sequence[tuple[float, np.ndarray]],
    advantage: np.ndarray,
) -> Figure:
    """Left: the AWR weight against the advantage; right: the target policy of one state for several beta."""
    fig, ax = plt.subplots(1, 2, figsize=(WIDTH, 4.2))
    for b, w in weights:
        ax[0].plot(adv_axis, w, label=rf"$\beta$ = {b:g}")
    ax[0].axhline(100, color="k", ls="--", lw=1, label="clamp at 100")
    ax[0].set(
        yscale="log",
        ylim=(1e-3, 500),
        xlabel=r"advantage $A = Q - V$",
        ylabel=r"weight $\min(e^{\beta A}, 100)$",
        title="AWR weights",
    )
    _legend_below(ax[0])
    for b, density in targets:
        label = r"$\beta$ = 0: $\pi_\beta$" if b == 0 else rf"$\beta$ = {b:g}"
        ax[1].plot(a_axis, density, lw=2.5 if b == 0 else 1.5, label=label)
    ax[1].plot(a_axis, advantage, "k:", label="advantage A(a)")
    ax[1].set(xlabel="action a", ylabel="density", title=r"$\pi^* \propto \pi_\beta\, \min(e^{\beta A}, 100)$")
    _legend_below(ax[1])
    return fig


def ch04_value_and_weights(
    layout: Any,
    value_image: np.ndarray,
    obs: np.ndarray,
    actions: np.ndarray,
    weights: np.ndarray,
    goal: np.ndarray,
    goal_radius: float,
) -> Figure:
    """Left: the value map (NaN where masked); right: dataset actions as arrows coloured by AWR weight."""
    fig, ax = plt.subplots(1, 2, figsize=(WIDTH, 3.7))
    ax[0].set_facecolor("0.85")
    im = ax[0].imshow(np.ma.masked_invalid(value_image), origin="lower", extent=layout.extent, cmap="viridis")
    ax[0].add_patch(
        plt.Circle((float(goal[0]), float(goal[1])), goal_radius, fc="none", ec="w", ls="--", lw=1.2, zorder=4)
    )
    draw_maze(ax[0], layout, fontsize=9)
    fig.colorbar(im, ax=ax[0], shrink=0.85, label=r"$V_\psi(s)$")
    ax[0].set_title(r"Value network $V_\psi$")
    order = np.argsort(weights)
    norm = LogNorm(vmin=max(float(weights.min()), 1e-3), vmax=100)
    qv = ax[1].quiver(
        obs[order, 0],
        obs[order, 1],
        actions[order, 0],
        actions[order, 1],
        weights[order],
        cmap="plasma",
        norm=norm,
        scale=25,
        width=0.005,
    )
    draw_maze(ax[1], layout, fontsize=9)
    fig.colorbar(qv, ax=ax[1], shrink=0.85, label="AWR weight (log scale)")
    ax[1].set_title(r"Dataset actions by weight ($\beta$ = 10)")
    return fig


def ch04_policies(
    layout: Any,
    grid_xy: np.ndarray,
    panels: Sequence[tuple[str, np.ndarray, Sequence[np.ndarray], int]],
) -> Figure:
    """One maze per policy: its mean action on a grid (arrows) and rollouts from the start (red).

    ``panels``: (name, mean actions [G, 2], rollout paths, successes).
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(WIDTH, 4.6))
    for ax, (name, mu, paths, successes) in zip(np.atleast_1d(axes), panels, strict=True):
        draw_maze(ax, layout, fontsize=9)
        ax.quiver(grid_xy[:, 0], grid_xy[:, 1], mu[:, 0], mu[:, 1], scale=25, width=0.005, color="C0")
        for path in paths:
            ax.plot(path[:, 0], path[:, 1], color="C3", lw=1.5, alpha=0.8)
        ax.set_title(f"{name}\n{successes}/{len(paths)} rollouts reach the goal")
    handles = [
        plt.Line2D([], [], color="C0", marker=r"$\rightarrow$", ms=12, ls="none", label="mean action on a grid"),
        plt.Line2D([], [], color="C3", lw=1.5, label="rollouts from the start S"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=2, frameon=False)
    return fig


# --- the dataset card ---------------------------------------------------------------------------


def sac_curves(runs: Sequence[dict[str, Any]]) -> Figure:
    """The SAC training curves of the behaviour policies, two per row, with the reference scores and snapshots.

    Each run: ``steps``, ``returns`` (arrays), ``info`` (the behaviour.json record). The dotted
    line is the level the medium snapshot was chosen for (``target_fraction`` of the way from
    ``ref_min`` to ``ref_max``); each title says whether the best snapshot is an expert.
    """
    cols = 2
    rows = int(np.ceil(len(runs) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(WIDTH, 3.1 * rows), squeeze=False)
    for ax, run in zip(axes.ravel(), runs, strict=False):
        info = run["info"]
        lo, hi = info["ref_min_score"], info["ref_max_score"]
        fraction = info["medium"]["target_fraction"]
        ax.plot(run["steps"] / 1e3, run["returns"], lw=0.8, alpha=0.6, label="training episodes")
        ax.axhline(lo, ls="--", c="gray", lw=1, label="ref_min (random)")
        ax.axhline(hi, ls="--", c="k", lw=1, label="ref_max (best snapshot, mean action)")
        target = lo + fraction * (hi - lo)
        ax.axhline(target, ls=":", c="tab:orange", lw=1.2, label=f"{fraction:.0%} of the way: medium's target")
        for name, color in (("medium", "tab:orange"), ("expert", "tab:green")):
            s = info[name]
            label = f"{'best' if name == 'expert' else name} snapshot (sampled actions)"
            ax.plot(s["env_steps"] / 1e3, s["sampled_return_mean"], "o", c=color, ms=7, label=label)
        cpu_min = info["training"]["cpu_seconds"] / 60
        expert = "an expert" if info.get("best_is_expert", True) else "not an expert"
        ax.set(
            title=f"{info['env_id']} ({cpu_min:.0f} CPU-min)\nbest snapshot: {expert}",
            xlabel="environment steps (thousands)",
            ylabel="episode return",
        )
    for ax in axes.ravel()[len(runs) :]:
        ax.axis("off")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=2, fontsize=9)
    return fig


def return_histograms(panels: Sequence[tuple[str, np.ndarray]], cols: int = 3) -> Figure:
    """One histogram of normalized episode returns per dataset, with its mean as a black line."""
    rows = int(np.ceil(len(panels) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(WIDTH, 1.9 * rows), squeeze=False, sharex=True)
    for ax, (name, scores) in zip(axes.ravel(), panels, strict=False):
        ax.hist(scores, bins=np.linspace(-60, 130, 39), color="tab:blue", alpha=0.8)
        ax.axvline(np.mean(scores), c="k", lw=1)
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelbottom=True)
    for ax in axes.ravel()[len(panels) :]:
        ax.axis("off")
    fig.supxlabel("normalized return (0 random, 100 best snapshot)", fontsize=9)
    fig.supylabel("episodes", fontsize=9)
    return fig


def maze_datasets(panels: Sequence[dict[str, Any]], n_drawn: int, seed: int = 0) -> Figure:
    """Per maze: a sample of episodes (red: reached the goal) and a log-density of the visited positions.

    Each panel: ``name``, ``layout``, ``episodes`` (list of [T, 2] positions), ``terminated`` (bool
    per episode).
    """
    rng = np.random.default_rng(seed)
    fig, axes = plt.subplots(len(panels), 2, figsize=(WIDTH, 3.6 * len(panels)), squeeze=False)
    for row, p in zip(axes, panels, strict=True):
        layout, obs, terms = p["layout"], p["episodes"], p["terminated"]
        ax = row[0]
        for i in rng.choice(len(obs), size=min(n_drawn, len(obs)), replace=False):
            ax.plot(obs[i][:, 0], obs[i][:, 1], lw=0.8, alpha=0.7, c="tab:red" if terms[i] else "tab:orange")
        draw_maze(ax, layout, fontsize=9)
        ax.set_title(f"{p['name']}: {n_drawn} random episodes")
        ax = row[1]
        allpos = np.concatenate([o[:-1] for o in obs])
        h, _, _ = np.histogram2d(
            allpos[:, 0],
            allpos[:, 1],
            bins=[layout.shape[1] * 8, layout.shape[0] * 8],
            range=[layout.extent[:2], layout.extent[2:]],
        )
        im = ax.imshow(np.log10(1 + h.T), origin="lower", extent=layout.extent, cmap="viridis")
        draw_maze(ax, layout, fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.85, label="log10(1 + visits)")
        ax.set_title(f"{p['name']}: where the data is")
    return fig
