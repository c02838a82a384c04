"""The naive offline baseline (runs.naive): its Monte Carlo yardstick, its probe, and a tiny run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import iql_tutorial  # noqa: F401  (plugs the update runner into IQLAgent)
from iql_tutorial.data import Transitions
from iql_tutorial.runs.naive import (
    NaiveConfig,
    collect,
    discounted_returns,
    mc_horizon,
    naive_run,
    probe_rows,
    steps_left,
)
from iql_tutorial.runs.policies import load_policy


def test_discounted_returns_by_hand():
    # two episodes: rewards 1, 2, 3 and 4, 5; gamma 0.5, summed backwards within each episode
    rewards = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    ids = np.array([0, 0, 0, 1, 1])
    # episode 0: G2 = 3, G1 = 2 + 0.5 * 3 = 3.5, G0 = 1 + 0.5 * 3.5 = 2.75
    # episode 1: G4 = 5, G3 = 4 + 0.5 * 5 = 6.5 (nothing of episode 1 leaks into episode 0)
    np.testing.assert_allclose(discounted_returns(rewards, ids, 0.5), [2.75, 3.5, 3.0, 6.5, 5.0])
    # a [T, k] reward sums its components first
    np.testing.assert_allclose(discounted_returns(np.stack([rewards, rewards], 1), ids, 0.5)[0], 5.5)


def test_discounted_returns_match_a_plain_loop():
    rng = np.random.default_rng(0)
    ids = np.repeat(np.arange(4), [7, 1, 12, 5])
    r = rng.normal(size=len(ids))
    want = np.array([sum(0.9**k * r[j] for k, j in enumerate(range(t, len(r))) if ids[j] == ids[t])
                     for t in range(len(r))])  # fmt: skip
    np.testing.assert_allclose(discounted_returns(r, ids, 0.9), want, rtol=1e-12)


def _episodes(lengths, terminated) -> Transitions:
    ids = np.repeat(np.arange(len(lengths)), lengths)
    n = len(ids)
    term = np.zeros(n)
    trunc = np.zeros(n)
    ends = np.cumsum(lengths) - 1
    for e, end in enumerate(ends):
        (term if terminated[e] else trunc)[end] = 1.0
    return Transitions(obs=torch.zeros(n, 2), actions=torch.zeros(n, 1), rewards=torch.ones(n),
                       next_obs=torch.zeros(n, 2), terminals=torch.as_tensor(term, dtype=torch.float32),
                       timeouts=torch.as_tensor(trunc, dtype=torch.float32),
                       episode_ids=torch.as_tensor(ids))  # fmt: skip


def test_probe_keeps_terminated_episodes_and_the_head_of_truncated_ones():
    assert mc_horizon(0.99) == 459 and 0.99**459 < 0.01 <= 0.99**458
    np.testing.assert_array_equal(steps_left(np.array([0, 0, 0, 1, 1])), [2, 1, 0, 1, 0])
    # episode 0: 10 steps, truncated; episode 1: 4 steps, terminated. With H = 6 only the first 4
    # rows of episode 0 have 6 or more steps after them; every row of episode 1 is kept.
    t = _episodes([10, 4], [False, True])
    rows = probe_rows(t, 0.99, size=100, horizon=6)
    np.testing.assert_array_equal(rows, [0, 1, 2, 3, 10, 11, 12, 13])
    # a draw of fewer rows is a subset, the same for every call (its own generator)
    few = probe_rows(t, 0.99, size=3, horizon=6)
    assert len(few) == 3 and set(few) <= set(rows)
    np.testing.assert_array_equal(few, probe_rows(t, 0.99, size=3, horizon=6))
    with pytest.raises(ValueError, match="mc-horizon"):
        probe_rows(_episodes([10], [False]), 0.99, size=5, horizon=20)


def test_naive_run_logs_q_and_monte_carlo_and_resumes(tiny_minari, tmp_path):
    out = tmp_path / "naive"
    cfg = NaiveConfig(dataset="tests/pendulum/tiny-v0", steps=40, seed=0, out=str(out), log_every=20, eval_every=40,
                      eval_episodes=1, probe_size=50, device="cpu", mode="eager", hidden_dims=(16, 16),
                      batch_size=16, mc_horizon=10)  # fmt: skip
    naive_run(cfg, progress=False)
    q = pd.read_csv(out / "q_log.csv")
    assert {"method", "step", "q_mean", "mc_mean"} <= set(q.columns)
    for method in ("naive", "awr"):
        rows = q[q["method"] == method]
        assert rows["step"].tolist() == [0, 20, 40]
        assert np.isfinite(rows["q_mean"]).all()
        # the Monte Carlo column is the probe's, the same for both methods, and not a Q estimate
        assert rows["mc_mean"].nunique() == 1
    assert q["mc_mean"].nunique() == 1
    assert q.loc[q["method"] == "naive", "q_mean"].nunique() == 3  # the critics moved
    ev = pd.read_csv(out / "eval_log.csv")
    assert sorted(ev["method"]) == ["awr", "naive"] and (ev["step"] == 40).all()
    assert ev["score_mean"].notna().all()
    # the saved policies act in [-1, 1]
    for name, kind in (("naive_policy.pt", "naive"), ("awr_policy.pt", "awr")):
        policy = load_policy(out / name)
        assert policy.kind == kind and policy.dataset == "tests/pendulum/tiny-v0"
        a = policy.act(np.zeros(3, dtype=np.float32))
        assert a.shape == (1,) and np.all(np.abs(a) <= 1)
    # the results files' tables: display labels, the sweep's columns, provenance per method
    scores, probe, prov = collect([out])
    assert sorted(scores["policy"]) == ["IQL", "naive"] and list(scores.columns[:4]) == [
        "dataset",
        "policy",
        "seed",
        "step",
    ]
    assert len(probe) == 6 and set(probe["policy"]) == {"IQL", "naive"}
    assert set(prov[out.name]["wall_s"]) == {"naive", "awr"} and prov[out.name]["steps"] == 40
    # a second call finds both methods done: nothing runs again, no row is duplicated
    naive_run(cfg, progress=False)
    assert len(pd.read_csv(out / "q_log.csv")) == len(q)
    # another run's settings in the same folder are refused, naming what differs
    with pytest.raises(ValueError, match="steps 40 there, 80 now"):
        naive_run(NaiveConfig(**{**cfg.__dict__, "steps": 80}), progress=False)


def test_plot_q_against_mc_draws_each_policy_and_the_monte_carlo_line():
    import matplotlib

    matplotlib.use("Agg")
    from iql_tutorial.viz.overestimation import plot_q_against_mc, short_name

    rows = [{"dataset": ds, "policy": pol, "seed": s, "step": st, "q_mean": q * (st + 1), "mc_mean": mc}
            for ds, mc in (("iqlbook/hopper/medium-v0", 300.0), ("iqlbook/hopper/medium-replay-v0", 100.0))
            for pol, q in (("naive", 5.0), ("IQL", 1.0)) for s in (0, 1) for st in (0, 1000, 2000)]  # fmt: skip
    fig = plot_q_against_mc(pd.DataFrame(rows), ["iqlbook/hopper/medium-v0", "iqlbook/hopper/medium-replay-v0"])
    ax = fig.axes[0]
    assert ax.get_title() == "hopper medium" and short_name("iqlbook/hopper/medium-replay-v0") == "hopper medium-replay"
    # 2 policies x (2 seeds + their mean) lines, and the Monte Carlo line at the probe's value
    assert len(ax.lines) == 2 * 3 + 1 and ax.lines[-1].get_ydata()[0] == 300.0
    assert list(ax.lines[0].get_xdata()) == [1000, 2000]  # step 0 is left off the log axis
