"""Comparing methods over seeds the way the field does since Agarwal et al. (2021), "Deep
Reinforcement Learning at the Edge of the Statistical Precipice" (NeurIPS): the interquartile mean
(IQM) of the runs' final scores, percentile bootstrap confidence intervals that resample the
seeds of each dataset separately (the *stratified* bootstrap), and the probability of improvement
P(X > Y).

rliable, the paper's library, does not import with this project's pinned pandas 3 (its ``arch``
dependency fails), so the same estimators are computed here with ``scipy.stats``:

- IQM: ``scipy.stats.trim_mean(x, 0.25)``, the mean of the middle half of the runs (with fewer
  than four runs nothing is cut and it is the mean);
- confidence intervals: ``scipy.stats.bootstrap(..., method="percentile")``; passing each
  dataset's runs as their own sample makes scipy resample every dataset separately, which is the
  stratified bootstrap;
- probability of improvement on one dataset: the Mann-Whitney U statistic of X against Y divided
  by ``n * m``, i.e. the fraction of (X run, Y run) pairs in which X scores higher, a tie counting
  one half; over several datasets, its average.

A percentile interval cannot reach beyond the values it resamples: with three seeds it is the
range of what was seen, and it is too narrow more often than 5% of the time. Read it as the
spread of the evidence at hand, not a guarantee.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as st

CONFIDENCE = 0.95
N_RESAMPLES = 10_000


@dataclass(frozen=True)
class Interval:
    """A point estimate with its confidence interval; ``low``/``high`` are NaN when a sample has
    fewer than two runs (nothing to resample)."""

    estimate: float
    low: float
    high: float

    def above(self, value: float) -> bool:
        return bool(self.low > value)

    def below(self, value: float) -> bool:
        return bool(self.high < value)


def iqm(scores: np.ndarray | Sequence[float], axis: int = -1) -> np.ndarray:
    """Interquartile mean along ``axis``: ``trim_mean`` cutting 25% of the runs at each end."""
    return st.trim_mean(np.asarray(scores, dtype=np.float64), 0.25, axis=axis)


def bootstrap_interval(
    samples: Sequence[np.ndarray | Sequence[float]],
    statistic: Callable[..., np.ndarray],
    *,
    paired: bool = False,
    n_resamples: int = N_RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> Interval:
    """``statistic(*samples, axis=-1)`` with a percentile bootstrap interval.

    Each sample is resampled on its own (stratified), or with the same indices for all when
    ``paired`` (before/after scores of the same seeds). ``statistic`` must accept arrays with the
    runs along ``axis``."""
    data = tuple(np.asarray(s, dtype=np.float64) for s in samples)
    estimate = float(statistic(*data, axis=-1))
    if min(len(s) for s in data) < 2:
        return Interval(estimate, math.nan, math.nan)
    res = st.bootstrap(
        data,
        statistic,
        n_resamples=n_resamples,
        vectorized=True,
        paired=paired,
        axis=-1,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    ci = res.confidence_interval
    return Interval(estimate, float(ci.low), float(ci.high))


def _pooled_iqm(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
    return iqm(np.concatenate(samples, axis=axis), axis=axis)


def _iqm_difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return iqm(x, axis=axis) - iqm(y, axis=axis)


def _mean_difference(before: np.ndarray, after: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(after, axis=axis) - np.mean(before, axis=axis)


def iqm_interval(scores: Sequence[float], **kw) -> Interval:
    """IQM of one set of runs with its bootstrap interval."""
    return bootstrap_interval([scores], iqm, **kw)


def aggregate_iqm_interval(scores_by_dataset: Sequence[Sequence[float]], **kw) -> Interval:
    """IQM over the runs of every dataset together; the interval resamples the seeds within each
    dataset (stratified bootstrap), so every resample keeps each dataset's number of runs."""
    return bootstrap_interval(list(scores_by_dataset), _pooled_iqm, **kw)


def iqm_difference_interval(x: Sequence[float], y: Sequence[float], **kw) -> Interval:
    """IQM(x) - IQM(y), the two sets of runs resampled independently."""
    return bootstrap_interval([x, y], _iqm_difference, **kw)


def paired_change_interval(before: Sequence[float], after: Sequence[float], **kw) -> Interval:
    """Mean of ``after - before`` over the same seeds, the seeds resampled in pairs."""
    return bootstrap_interval([before, after], _mean_difference, paired=True, **kw)


def _pairwise_improvement(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    """P(X > Y) + P(X = Y) / 2 over all pairs, along ``axis`` (vectorized over the rest)."""
    x, y = np.moveaxis(x, axis, -1), np.moveaxis(y, axis, -1)
    diff = x[..., :, None] - y[..., None, :]
    return (np.sign(diff) + 1).mean(axis=(-2, -1)) / 2


def probability_of_improvement(x: Sequence[float], y: Sequence[float]) -> float:
    """P(X > Y) on one dataset: Mann-Whitney U of ``x`` against ``y`` over ``len(x) * len(y)``
    (ties count one half)."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if np.ptp(np.concatenate([a, b])) == 0:
        # every score equal: every pair is a tie (scipy's test statistic is undefined here)
        return 0.5
    return float(st.mannwhitneyu(a, b).statistic / (len(a) * len(b)))


def probability_of_improvement_interval(
    x_by_dataset: Sequence[Sequence[float]], y_by_dataset: Sequence[Sequence[float]], **kw
) -> Interval:
    """The average over datasets of P(X > Y), with a stratified bootstrap interval (the X runs and
    the Y runs of every dataset are resampled separately)."""
    if len(x_by_dataset) != len(y_by_dataset) or not x_by_dataset:
        raise ValueError("probability_of_improvement_interval needs the same datasets (at least one) for X and Y.")
    samples = [s for pair in zip(x_by_dataset, y_by_dataset, strict=True) for s in pair]

    def average(*s: np.ndarray, axis: int = -1) -> np.ndarray:
        per = [_pairwise_improvement(s[i], s[i + 1], axis=axis) for i in range(0, len(s), 2)]
        return np.mean(per, axis=0)

    out = bootstrap_interval(samples, average, **kw)
    point = float(np.mean([probability_of_improvement(x, y) for x, y in zip(x_by_dataset, y_by_dataset, strict=True)]))
    return Interval(point, out.low, out.high)


def performance_profile(scores: Sequence[float], thresholds: Sequence[float]) -> np.ndarray:
    """The fraction of runs scoring above each threshold (Agarwal et al.'s run-score profile)."""
    s = np.asarray(scores, dtype=np.float64)
    return (s[None, :] > np.asarray(thresholds, dtype=np.float64)[:, None]).mean(axis=1)


def verdict(
    interval: Interval, null: float, better: str, worse: str, tie: str = "not separable", same: str = "no difference"
) -> str:
    """A label from an interval: ``better`` when it lies above ``null``, ``worse`` below it,
    ``same`` when it is the single point ``null`` (every resample equal: the runs did not differ),
    ``tie`` when it contains ``null`` otherwise (or there is no interval)."""
    if interval.low == interval.high == null:
        return same
    if interval.above(null):
        return better
    if interval.below(null):
        return worse
    return tie


def seeds_to_separate(x: Sequence[float], y: Sequence[float], alpha: float = 0.05, power: float = 0.8) -> float:
    """Seeds per method a two-sided two-sample z-test at level ``alpha`` would need to detect the
    observed difference of means with probability ``power``:
    ``n = 2 (z_{1-alpha/2} + z_power)^2 s^2 / d^2`` with ``s^2`` the average of the two sample
    variances and ``d`` the difference of the means. A rough planning number from a few seeds;
    NaN when it is undefined (a method with fewer than two runs, or no difference at all)."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if min(len(a), len(b)) < 2:
        return math.nan
    d = float(a.mean() - b.mean())
    if d == 0:
        return math.nan
    var = (a.var(ddof=1) + b.var(ddof=1)) / 2
    z = st.norm.ppf(1 - alpha / 2) + st.norm.ppf(power)
    return float(max(2, math.ceil(2 * z**2 * var / d**2)))


# --- a sweep's table of evaluations ----------------------------------------------------------


def final_scores(curves: pd.DataFrame, steps: int | None = None) -> pd.DataFrame:
    """One row per run (dataset, policy, seed): its final evaluation, the row at the run's largest
    step (not its best one). With ``steps``, runs that have not reached it (still in progress) are
    left out."""
    last = curves.sort_values("step").groupby(["dataset", "policy", "seed"], sort=True).tail(1)
    if steps is not None:
        last = last[last["step"] >= steps]
    return last[["dataset", "policy", "seed", "step", "score_mean"]].rename(columns={"score_mean": "score"})


def compare(final: pd.DataFrame, a: str = "IQL", b: str = "BC", **kw) -> pd.DataFrame:
    """Per dataset: runs, IQM and interval of ``a`` and of ``b``, the interval of the IQM
    difference, a verdict label from it, P(a > b), and the seeds per method a simple power
    estimate asks for where the interval contains zero. Datasets lacking either method are left
    out."""
    rows = []
    for ds, sub in final.groupby("dataset", sort=False):
        x = sub.loc[sub["policy"] == a, "score"].to_numpy()
        y = sub.loc[sub["policy"] == b, "score"].to_numpy()
        if not (len(x) and len(y)):
            continue
        ia, ib, diff = iqm_interval(x, **kw), iqm_interval(y, **kw), iqm_difference_interval(x, y, **kw)
        label = verdict(diff, 0.0, f"{a} ahead", f"{b} ahead")
        rows.append(
            {
                "dataset": ds,
                f"n {a}": len(x),
                f"n {b}": len(y),
                f"{a}": ia.estimate,
                f"{a} low": ia.low,
                f"{a} high": ia.high,
                f"{b}": ib.estimate,
                f"{b} low": ib.low,
                f"{b} high": ib.high,
                "difference": diff.estimate,
                "difference low": diff.low,
                "difference high": diff.high,
                "verdict": label,
                f"P({a} > {b})": probability_of_improvement(x, y),
                "seeds needed": seeds_to_separate(x, y) if label == "not separable" else math.nan,
            }
        )
    return pd.DataFrame(rows).set_index("dataset") if rows else pd.DataFrame()


def aggregate(final: pd.DataFrame, a: str = "IQL", b: str = "BC", **kw) -> dict[str, Interval]:
    """Over the datasets that have runs of both methods: the aggregate IQM of each (stratified
    bootstrap) and the average probability that a run of ``a`` beats a run of ``b``."""
    xs, ys = [], []
    for _, sub in final.groupby("dataset", sort=False):
        x = sub.loc[sub["policy"] == a, "score"].to_numpy()
        y = sub.loc[sub["policy"] == b, "score"].to_numpy()
        if len(x) and len(y):
            xs.append(x)
            ys.append(y)
    if not xs:
        raise ValueError(f"No dataset has runs of both {a} and {b}.")
    return {
        a: aggregate_iqm_interval(xs, **kw),
        b: aggregate_iqm_interval(ys, **kw),
        f"P({a} > {b})": probability_of_improvement_interval(xs, ys, **kw),
    }


def paired_change(curves: pd.DataFrame, start: int = 0, end: int | None = None, **kw) -> pd.DataFrame:
    """Per dataset of a fine-tuning sweep (columns dataset, seed, step, score_mean): the IQM
    [interval] at step ``start`` and at ``end`` (default: the last step), and the mean change over
    the seeds evaluated at both, with a paired interval and a label (``rose``, ``fell``, ``not
    separable``, ``no difference``). Each cell is ``(estimate, low, high)``."""
    end = int(curves["step"].max()) if end is None else end
    rows = {}
    for ds, sub in curves.groupby("dataset", sort=True):
        at = sub.pivot_table(index="seed", columns="step", values="score_mean")
        if start not in at.columns or end not in at.columns:
            continue
        both = at[[start, end]].dropna()
        change = paired_change_interval(both[start].to_numpy(), both[end].to_numpy(), **kw)
        rows[ds] = {
            "seeds": len(both),
            "offline": tuple(vars(iqm_interval(both[start].to_numpy(), **kw)).values()),
            "online": tuple(vars(iqm_interval(both[end].to_numpy(), **kw)).values()),
            "change": tuple(vars(change).values()),
            "label": verdict(change, 0.0, "rose", "fell"),
        }
    return pd.DataFrame.from_dict(rows, orient="index")
