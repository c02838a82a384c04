"""Chapter 6's figures and tables: a live training run, the sweeps' learning curves, the interval
figure of the IQL/BC comparison and the fine-tuning curves.

Every figure is sized for the book's text column (``WIDTH`` inches at 100 dpi, shown at about
its natural size) with text of at least 9 pt, and is returned for the chapter's collapsed cell to
show. Nothing here trains or computes a statistic: the numbers come from
:mod:`iql_tutorial.utils.stats` and the committed result files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from iql_tutorial.utils.stats import Interval, iqm
from iql_tutorial.viz.style import book_rc

# The width of the book's text column in inches at 100 dpi.
WIDTH = 7.2
COLORS = {"IQL": "C0", "BC": "C1"}
# 100 is the mean return of each dataset's reference policy (data/README.md): the best policy of
# the SAC run that collected the data (expert-level on Hopper and Pendulum only), and for the
# mazes the noise-free controller aimed at the goal (the score is then a success rate in percent).
SCORE_LABEL = "normalized score\n(0 = random, 100 = the dataset's\nreference policy)"
SCORE_LINE = "normalized score (0 = random, 100 = the dataset's reference policy)"


def short(dataset_id: str) -> str:
    """``iqlbook/hopper/medium-replay-v0`` -> ``hopper medium-replay``."""
    return dataset_id.removeprefix("iqlbook/").removesuffix("-v0").replace("/", " ")


def _thousands(x: float, _: Any) -> str:
    return f"{x / 1000:g}k"


def live_run(train_log: pd.DataFrame, eval_log: pd.DataFrame) -> Figure:
    """The live run: value and critic losses (Eqs. 5 and 6), the actor loss (Eq. 7) and the
    evaluation score (mean +- std over episodes) against gradient steps."""
    with plt.rc_context(book_rc()):
        fig, axes = plt.subplot_mosaic([["loss", "actor"], ["eval", "eval"]], figsize=(WIDTH, 5.0))
        ax = axes["loss"]
        ax.plot(train_log["step"], train_log["value_loss"], label="value, Eq. (5)")
        ax.plot(train_log["step"], train_log["critic_loss"], label="critic, Eq. (6)")
        ax.set(yscale="log", xlabel="gradient steps", ylabel="loss (reward units²)", title="Value and critic")
        ax.legend()
        ax = axes["actor"]
        ax.plot(train_log["step"], train_log["actor_loss"], color="C2")
        ax.set(xlabel="gradient steps", ylabel="weighted −log π (nats)", title="Actor, Eq. (7)")
        ax = axes["eval"]
        ax.errorbar(
            eval_log["step"], eval_log["score_mean"], yerr=eval_log["score_std"], marker="o", capsize=3, color="C3"
        )
        ax.set(xlabel="gradient steps", ylabel=SCORE_LABEL, title="Evaluation: mean ± std over episodes")
    return fig


def learning_curves(
    curves: pd.DataFrame,
    datasets: Sequence[str],
    max_steps: int,
    data_reference: Mapping[str, float],
) -> Figure:
    """One panel per dataset: every finished seed thin, the IQM over seeds at each evaluation
    thick, the data reference dashed (where there is one)."""
    with plt.rc_context(book_rc()):
        ncols = 2
        nrows = math.ceil(len(datasets) / ncols)
        fig, axes = plt.subplots(nrows, ncols, figsize=(WIDTH, 2.5 * nrows + 0.6), squeeze=False, sharex=True)
        for ax, ds in zip(axes.flat, datasets, strict=False):
            sub = curves[curves["dataset"] == ds]
            for pol, color in COLORS.items():
                runs = sub[sub["policy"] == pol]
                for _, run in runs.groupby("seed"):
                    ax.plot(run["step"], run["score_mean"], color=color, lw=0.8, alpha=0.45)
                if len(runs):
                    mid = runs.groupby("step")["score_mean"].agg(lambda s: float(iqm(s.to_numpy())))
                    ax.plot(mid.index, mid.to_numpy(), "-o", color=color, lw=2.0, ms=3)
            if ds in data_reference and not math.isnan(data_reference[ds]):
                ax.axhline(data_reference[ds], color="gray", ls="--", lw=1)
            ax.set(title=short(ds), xlim=(0, max_steps))
            ax.xaxis.set_major_formatter(FuncFormatter(_thousands))
        for ax in axes[-1, :]:
            ax.set_xlabel("gradient steps")
        fig.supylabel(SCORE_LINE, fontsize=10)
        for ax in list(axes.flat)[len(datasets) :]:
            ax.set_visible(False)
        handles = [
            Line2D([], [], color="C0", lw=2, marker="o", ms=3, label="IQL, IQM"),
            Line2D([], [], color="C1", lw=2, marker="o", ms=3, label="BC, IQM"),
            Line2D([], [], color="k", lw=0.8, alpha=0.6, label="one seed"),
            Line2D([], [], color="gray", ls="--", label="data"),
        ]
        fig.legend(handles=handles, loc="outside lower center", ncol=4)
    return fig


def intervals(
    table: pd.DataFrame,
    overall: Mapping[str, Interval],
    data_reference: Mapping[str, float] | None = None,
    a: str = "IQL",
    b: str = "BC",
) -> Figure:
    """Left: the IQM of each method with its 95% interval, per dataset and over all datasets,
    and the data reference where given. Right: the interval of the IQM difference ``a - b`` per
    dataset, with zero marked."""
    names = [short(ds) for ds in table.index]
    with plt.rc_context(book_rc()):
        fig, (left, right) = plt.subplots(
            1, 2, figsize=(WIDTH, 0.45 * len(names) + 1.9), sharey=True, width_ratios=[3, 2]
        )
        ys = np.arange(len(names) + 1)[::-1].astype(float)
        for k, (pol, dy) in enumerate(((a, 0.14), (b, -0.14))):
            est = [*table[pol], overall[pol].estimate]
            low = [*table[f"{pol} low"], overall[pol].low]
            high = [*table[f"{pol} high"], overall[pol].high]
            err = np.array([np.subtract(est, low), np.subtract(high, est)])
            left.errorbar(est, ys + dy, xerr=err, fmt="o", color=COLORS.get(pol, f"C{k}"), capsize=3, label=pol)
        if data_reference is not None:
            ref = [data_reference.get(ds, math.nan) for ds in table.index]
            left.plot(ref, ys[:-1], "|", color="gray", ms=14, mew=2, label="data")
        left.set(xlabel="IQM of the final normalized scores\n(0 = random, 100 = the dataset's\nreference policy)")
        left.legend(loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=3, frameon=False)
        d_est = table["difference"].to_numpy()
        d_err = np.array([d_est - table["difference low"], table["difference high"] - d_est])
        right.errorbar(d_est, ys[:-1], xerr=d_err, fmt="s", color="k", capsize=3)
        right.axvline(0.0, color="gray", lw=1)
        right.set(xlabel=f"IQM difference\n{a} − {b}\n(score points)")
        left.set_yticks(ys, [*names, "all datasets"])
        left.axhline(0.5, color="gray", lw=0.6, ls=":")
        for ax in (left, right):
            ax.grid(axis="x", alpha=0.3)
    return fig


def finetune_curves(online: pd.DataFrame) -> Figure:
    """Online fine-tuning after offline IQL: every seed thin, the IQM over seeds thick, one panel
    per dataset; step 0 is the offline policy."""
    datasets = sorted(online["dataset"].unique())
    with plt.rc_context(book_rc()):
        fig, axes = plt.subplots(1, len(datasets), figsize=(WIDTH, 2.9), squeeze=False)
        for ax, ds in zip(axes[0], datasets, strict=True):
            sub = online[online["dataset"] == ds]
            for _, run in sub.groupby("seed"):
                ax.plot(run["step"], run["score_mean"], color="C3", lw=0.8, alpha=0.45)
            mid = sub.groupby("step")["score_mean"].agg(lambda s: float(iqm(s.to_numpy())))
            ax.plot(mid.index, mid.to_numpy(), "-o", color="C3", lw=2, ms=3)
            ax.set(title=short(ds), xlabel="online steps")
            ax.xaxis.set_major_formatter(FuncFormatter(_thousands))
            lo, hi = sub["score_mean"].min(), sub["score_mean"].max()
            if hi - lo < 10:
                # a flat curve: a readable range around it, not a magnified one
                ax.set_ylim((lo + hi) / 2 - 10, (lo + hi) / 2 + 10)
        axes[0, 0].set_ylabel(SCORE_LABEL)
    return fig


def _ci(est: float, low: float, high: float, digits: int = 1) -> str:
    if math.isnan(low):
        return f"{est:.{digits}f}"
    return f"{est:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def scores_table(
    table: pd.DataFrame, data_reference: Mapping[str, float] | None = None, a: str = "IQL", b: str = "BC"
) -> pd.DataFrame:
    """Per dataset: the data reference (where given) and each method's IQM [95% interval]."""
    out = pd.DataFrame(index=pd.Index([short(ds) for ds in table.index], name="dataset"))
    if data_reference is not None:
        ref = [data_reference.get(ds, math.nan) for ds in table.index]
        out["data"] = ["—" if math.isnan(v) else f"{v:.1f}" for v in ref]
    for pol in (a, b):
        out[f"{pol} (n)"] = [f"{r[f'n {pol}']:.0f}" for _, r in table.iterrows()]
        out[pol] = [_ci(r[pol], r[f"{pol} low"], r[f"{pol} high"]) for _, r in table.iterrows()]
    return out


def difference_table(table: pd.DataFrame, a: str = "IQL", b: str = "BC") -> pd.DataFrame:
    """Per dataset: the IQM difference [95% interval], P(a > b), the verdict the interval gives,
    and the seeds per method a power estimate asks for where it cannot separate the two."""
    out = pd.DataFrame(index=pd.Index([short(ds) for ds in table.index], name="dataset"))
    out[f"{a} − {b}"] = [_ci(r["difference"], r["difference low"], r["difference high"]) for _, r in table.iterrows()]
    out[f"P({a} > {b})"] = [f"{p:.2f}" for p in table[f"P({a} > {b})"]]
    out["verdict"] = table["verdict"].to_numpy()
    out["seeds needed"] = ["" if math.isnan(n) else f"{n:.0f}" for n in table["seeds needed"]]
    return out


def change_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Fine-tuning per dataset: IQM [95% interval] offline and after the online steps, and the
    mean change over the same seeds [paired 95% interval] with its label."""
    out = pd.DataFrame(index=pd.Index([short(ds) for ds in rows.index], name="dataset"))
    for col in ("offline", "online"):
        out[col] = [_ci(*r[col]) for _, r in rows.iterrows()]
    out["change"] = [_ci(*r["change"]) for _, r in rows.iterrows()]
    out["label"] = rows["label"].to_numpy()
    return out


def budget_table(
    before: pd.DataFrame, after: pd.DataFrame, labels: tuple[str, str], methods: Sequence[str] = ("IQL", "BC")
) -> pd.DataFrame:
    """The datasets of both comparisons, one row per (dataset, method): the IQM [95% interval]
    at the smaller budget and at the larger one."""
    rows = []
    for ds in [d for d in after.index if d in before.index]:
        for pol in methods:
            rows.append(
                {
                    "dataset": short(ds),
                    "method": pol,
                    labels[0]: _ci(*(before.loc[ds, c] for c in (pol, f"{pol} low", f"{pol} high"))),
                    labels[1]: _ci(*(after.loc[ds, c] for c in (pol, f"{pol} low", f"{pol} high"))),
                }
            )
    return pd.DataFrame(rows).set_index(["dataset", "method"])
