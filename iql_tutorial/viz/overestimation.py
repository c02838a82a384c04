"""The failure IQL avoids, as a figure: the naive baseline's Q against the data's Monte Carlo returns.

``plot_q_against_mc(probe)`` reads the table of ``runs.naive.collect`` (``data/results/naive-hopper-q.csv``:
dataset, policy, seed, step, q_mean, mc_mean) and draws, per dataset, the critics' mean Q on the
probe over training, one thin line per seed and a thick one for their mean, for each policy (naive,
IQL), with the probe's discounted Monte Carlo return as a dashed line: where the curves leave it,
the critic believes in returns the data never shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

COLORS = {"naive": "#c0392b", "IQL": "#1f77b4"}


def short_name(dataset: str) -> str:
    """``iqlbook/hopper/medium-v0`` -> ``hopper medium``."""
    parts = dataset.split("/")
    return " ".join(parts[-2:]).rsplit("-v", 1)[0] if len(parts) >= 2 else dataset


def plot_q_against_mc(probe: Any, datasets: Sequence[str] | None = None, log: bool = True) -> Any:
    """One panel per dataset: mean Q on the probe against training steps, per policy (thin: each
    seed; thick: their mean), and the probe's Monte Carlo return (dashed). ``log``: a log y-axis,
    since the naive estimate grows by orders of magnitude."""
    import matplotlib.pyplot as plt

    datasets = list(datasets) if datasets is not None else sorted(probe["dataset"].unique())
    fig, axes = plt.subplots(1, len(datasets), figsize=(3.6 * len(datasets), 3.4), squeeze=False)
    for ax, ds in zip(axes[0], datasets, strict=True):
        d = probe[probe["dataset"] == ds]
        if log:  # step 0 (untrained critics, Q near 0) has no place on a log axis
            d = d[d["step"] > 0]
        for policy, color in COLORS.items():
            p = d[d["policy"] == policy]
            if p.empty:
                continue
            for _, run in p.groupby("seed"):
                ax.plot(run["step"], run["q_mean"], color=color, lw=0.8, alpha=0.35)
            mean = p.groupby("step")["q_mean"].mean()
            n = p["seed"].nunique()
            label = f"{'naive (offline SAC)' if policy == 'naive' else policy}, {n} seed{'s' * (n > 1)}"
            ax.plot(mean.index, mean, color=color, lw=2.0, label=label)
        mc = float(d["mc_mean"].iloc[0])
        ax.axhline(mc, color="0.25", ls="--", lw=1.2, label="discounted Monte Carlo return of the data")
        ax.annotate(f"{mc:.0f}", (0.0, mc), xycoords=("axes fraction", "data"), xytext=(3, 3),
                    textcoords="offset points", fontsize=9, color="0.25")  # fmt: skip
        if log:
            ax.set_yscale("log")
        ax.set_title(short_name(ds), fontsize=10)
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("mean Q on the data's (s, a) pairs")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=9, frameon=False)
    fig.tight_layout()
    return fig
