"""Importing your own arrays as a Minari dataset: round trips, and every bad input refused in one
line with nothing left behind."""

import os
from pathlib import Path

import h5py
import minari
import numpy as np
import pytest

from iql_tutorial.data import importer, load_dataset
from iql_tutorial.data.importer import import_arrays, import_file, main

LENGTHS = (20, 15, 25)  # episode 0 terminates, 1 and 2 are truncated
T = sum(LENGTHS)


@pytest.fixture()
def root(tmp_path, monkeypatch):
    """An empty MINARI_DATASETS_PATH for one test."""
    r = tmp_path / "minari"
    r.mkdir()
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(r))
    return r


def logged(reward_dim: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """Three episodes of chained random transitions, with next_observations."""
    rng = np.random.default_rng(seed)
    obs, nxt, terminals, timeouts = [], [], [], []
    for i, n in enumerate(LENGTHS):
        o = rng.normal(size=(n + 1, 3)).astype(np.float32)
        obs.append(o[:-1])
        nxt.append(o[1:])
        terminals.append(np.eye(1, n, n - 1)[0] * (i == 0))
        timeouts.append(np.eye(1, n, n - 1)[0] * (i != 0))
    rewards = rng.normal(size=(T, reward_dim) if reward_dim > 1 else T).astype(np.float32)
    return {
        "observations": np.concatenate(obs),
        "actions": rng.uniform(-2, 2, size=(T, 1)).astype(np.float32),
        "rewards": rewards,
        "terminals": np.concatenate(terminals),
        "timeouts": np.concatenate(timeouts),
        "next_observations": np.concatenate(nxt),
    }


def save(arrays: dict, path: Path) -> Path:
    if path.suffix == ".npz":
        np.savez(path, **arrays)
    else:
        with h5py.File(path, "w") as f:
            for k, v in arrays.items():
                f.create_dataset(k, data=v)
            f.create_dataset("infos/qpos", data=np.zeros(3))  # other content is ignored
    return path


def snapshot(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def refused(root: Path, match: str, call, *args, **kwargs) -> str:
    """Assert that the call raises a one-line ValueError matching ``match`` and writes nothing."""
    before = snapshot(root)
    with pytest.raises(ValueError, match=match) as e:
        call(*args, **kwargs)
    msg = str(e.value)
    assert "\n" not in msg, msg
    assert snapshot(root) == before, "a failed import left files behind"
    return msg


# ------------------------------------------------------------------------------------ round trips
@pytest.mark.parametrize("form", ["dict", ".npz", ".h5"])
def test_round_trip_every_field_through_minari_and_the_loader(root, tmp_path, form):
    a = logged(reward_dim=2)
    kw = {"action_low": -2.0, "action_high": 2.0}
    if form == "dict":
        result = import_arrays(a, "me/test/rt-v0", **kw)
    else:
        result = import_file(save(a, tmp_path / f"log{form}"), "me/test/rt-v0", **kw)
    assert (result.episodes, result.transitions, result.reward_dim, result.dropped) == (3, T, 2, 0)

    ds = minari.load_dataset("me/test/rt-v0")  # Minari itself reads it
    assert ds.spec.env_spec is None and ds.total_steps == T
    start = 0
    for i, ep in enumerate(ds.iterate_episodes()):
        end = start + LENGTHS[i]
        np.testing.assert_array_equal(ep.observations[:-1], a["observations"][start:end])
        np.testing.assert_array_equal(ep.observations[-1], a["next_observations"][end - 1])
        np.testing.assert_array_equal(ep.actions, a["actions"][start:end])
        np.testing.assert_array_equal(ep.rewards, a["rewards"][start:end])
        np.testing.assert_array_equal(ep.terminations, a["terminals"][start:end].astype(bool))
        np.testing.assert_array_equal(ep.truncations, a["timeouts"][start:end].astype(bool))
        start = end

    d = load_dataset("me/test/rt-v0", reward_norm="none")  # and so does the package's loader
    t = d.transitions
    assert not d.has_env and d.ref_min_score is None
    np.testing.assert_array_equal(t.obs.numpy(), a["observations"])
    np.testing.assert_array_equal(t.next_obs.numpy(), a["next_observations"])
    np.testing.assert_allclose(t.actions.numpy(), a["actions"] / 2.0, rtol=1e-6)  # [-2, 2] -> [-1, 1]
    np.testing.assert_allclose(d.action_scaler.to_env(t.actions.numpy()), a["actions"], rtol=1e-6)
    np.testing.assert_array_equal(t.rewards.numpy(), a["rewards"])
    np.testing.assert_array_equal(t.terminals.numpy(), a["terminals"])
    np.testing.assert_array_equal(t.timeouts.numpy(), a["timeouts"])
    np.testing.assert_array_equal(t.episode_ids.numpy(), np.repeat(np.arange(3), LENGTHS))
    with pytest.raises(ValueError, match="names no environment"):
        d.make_env()


def test_episode_ends_offsets_and_flags_give_the_same_dataset(root):
    a = logged()
    del a["timeouts"]
    offsets = dict(a, episode_ends=np.cumsum(LENGTHS))
    flags = dict(a, episode_ends=np.isin(np.arange(T), np.cumsum(LENGTHS) - 1))
    import_arrays(offsets, "me/test/offsets-v0", action_low=-2, action_high=2)
    import_arrays(flags, "me/test/flags-v0", action_low=-2, action_high=2)
    x, y = load_dataset("me/test/offsets-v0").transitions, load_dataset("me/test/flags-v0").transitions
    for name in ("obs", "actions", "rewards", "next_obs", "terminals", "timeouts", "episode_ids"):
        np.testing.assert_array_equal(getattr(x, name).numpy(), getattr(y, name).numpy())
    truncated = np.zeros(T)
    truncated[np.cumsum(LENGTHS)[1:] - 1] = 1  # episodes 1 and 2 end without a terminal
    np.testing.assert_array_equal(x.timeouts.numpy(), truncated)


def test_without_next_observations_truncated_episodes_lose_their_last_transition(root):
    a = logged()
    del a["next_observations"]
    r = import_arrays(a, "me/test/nonext-v0", action_low=-2, action_high=2)
    assert (r.dropped, r.transitions) == (2, T - 2)
    t = load_dataset("me/test/nonext-v0").transitions
    np.testing.assert_array_equal(t.timeouts.numpy().nonzero()[0], [20 + 14 - 1, T - 2 - 1])
    first = t.episode_ids.numpy() == 0  # the terminated episode is whole; next obs chain
    np.testing.assert_array_equal(t.obs.numpy()[first][1:], t.next_obs.numpy()[first][:-1])


def test_with_an_environment_the_spaces_and_reference_scores_are_recorded(root, tmp_path, capsys):
    a = logged()
    a["observations"] = np.clip(a["observations"], -1, 1)  # inside Pendulum's observation space
    a["next_observations"] = np.clip(a["next_observations"], -1, 1)
    path = save(a, tmp_path / "log.npz")
    argv = [str(path), "--id", "me/pendulum/cli-v0", "--env", "Pendulum-v1", "--ref-min", "-1200", "--ref-max", "-150"]
    assert main(argv) == 0
    assert "imported 3 episodes" in capsys.readouterr().out
    d = load_dataset("me/pendulum/cli-v0")
    assert d.has_env and (d.ref_min_score, d.ref_max_score) == (-1200.0, -150.0)
    np.testing.assert_array_equal(d.action_scaler.low, [-2.0])
    np.testing.assert_array_equal(d.action_scaler.high, [2.0])
    env = d.make_env()
    assert env.spec.id == "Pendulum-v1"
    env.close()
    assert d.normalized_score(-150.0) == pytest.approx(100.0)


def test_force_replaces_an_existing_dataset(root):
    import_arrays(logged(seed=0), "me/test/twice-v0", action_low=-2, action_high=2)
    import_arrays(logged(seed=1), "me/test/twice-v0", action_low=-2, action_high=2, force=True)
    obs = load_dataset("me/test/twice-v0").transitions.obs.numpy()
    np.testing.assert_array_equal(obs, logged(seed=1)["observations"])
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # no temporary folder left


# ------------------------------------------------------------------------------------- bad inputs
def test_mismatched_lengths_name_the_arrays_and_their_lengths(root):
    a = logged()
    a["rewards"] = a["rewards"][:-1]
    msg = refused(root, "different lengths", import_arrays, a, "me/test/bad-v0", action_low=-2, action_high=2)
    assert f"observations {T}" in msg and f"rewards {T - 1}" in msg


def test_nan_names_the_array_and_the_row(root):
    a = logged()
    a["observations"][7, 1] = np.nan
    refused(root, r"'observations' holds NaN or inf at row 7", import_arrays, a, "me/test/bad-v0",
            action_low=-2, action_high=2)  # fmt: skip


def test_inf_in_rewards_names_the_array_and_the_row(root):
    a = logged()
    a["rewards"][33] = np.inf
    refused(root, r"'rewards' holds NaN or inf at row 33", import_arrays, a, "me/test/bad-v0",
            action_low=-2, action_high=2)  # fmt: skip


def test_actions_outside_the_bounds_are_refused(root):
    a = logged()
    a["actions"][12, 0] = 2.5
    refused(root, r"actions\[12, 0\] = 2.5 lies outside the declared bounds \[-2, 2\]", import_arrays, a,
            "me/test/bad-v0", action_low=-2, action_high=2)  # fmt: skip


def test_no_bounds_and_no_environment_is_refused(root):
    msg = refused(root, "no action bounds", import_arrays, logged(), "me/test/bad-v0")
    assert "--action-low" in msg and "--env" in msg


def test_an_episode_without_an_end_is_refused(root):
    a = logged()
    a["timeouts"][-1] = 0
    refused(root, rf"last transition \(row {T - 1}\) is neither terminal nor timeout", import_arrays, a,
            "me/test/bad-v0", action_low=-2, action_high=2)  # fmt: skip


def test_episode_ends_that_do_not_cover_the_end_are_refused(root):
    a = logged()
    del a["timeouts"]
    a["episode_ends"] = np.cumsum(LENGTHS)[:-1]  # the last episode is missing
    msg = refused(root, "episode_ends does not cover the end", import_arrays, a, "me/test/bad-v0",
                  action_low=-2, action_high=2)  # fmt: skip
    assert f"exactly {T}" in msg


def test_discrete_actions_are_refused(root):
    a = logged()
    a["actions"] = np.random.default_rng(0).integers(0, 4, size=T)
    refused(root, "discrete", import_arrays, a, "me/test/bad-v0", action_low=0, action_high=3)


def test_an_existing_id_is_refused_without_force(root):
    import_arrays(logged(), "me/test/taken-v0", action_low=-2, action_high=2)
    before = (root / "me/test/taken-v0/data/main_data.hdf5").read_bytes()
    refused(root, "already exists.*--force", import_arrays, logged(seed=1), "me/test/taken-v0",
            action_low=-2, action_high=2)  # fmt: skip
    assert (root / "me/test/taken-v0/data/main_data.hdf5").read_bytes() == before


def test_a_missing_file_is_refused(root, tmp_path):
    refused(root, "does not exist", import_file, tmp_path / "nope.npz", "me/test/bad-v0")


def test_an_unreadable_file_is_refused(root, tmp_path):
    junk = tmp_path / "log.npz"
    junk.write_bytes(b"not an archive at all")
    refused(root, "neither an .npz", import_file, junk, "me/test/bad-v0")
    damaged = tmp_path / "damaged.npz"
    np.savez(damaged, **logged())
    damaged.write_bytes(damaged.read_bytes()[:300])  # a zip header, then nothing
    refused(root, "cannot be read as npz", import_file, damaged, "me/test/bad-v0")


def test_a_missing_required_array_is_refused(root):
    a = logged()
    del a["rewards"]
    msg = refused(root, r"missing required array\(s\) rewards", import_arrays, a, "me/test/bad-v0",
                  action_low=-2, action_high=2)  # fmt: skip
    assert "found" in msg and "observations" in msg


def test_a_failure_while_writing_leaves_nothing_behind(root, monkeypatch):
    from iql_tutorial.data import minari_writer

    def broken(path):
        raise OSError("disk full")

    monkeypatch.setattr(minari_writer, "compact_hdf5", broken)
    before = snapshot(root)
    with pytest.raises(OSError, match="disk full"):
        import_arrays(logged(), "me/test/half-v0", action_low=-2, action_high=2)
    assert snapshot(root) == before


def test_cli_prints_one_error_line_and_exits_2(root, tmp_path, capsys):
    a = logged()
    a["actions"][3, 0] = -9.0
    path = save(a, tmp_path / "log.h5")
    assert main([str(path), "--id", "me/test/bad-v0", "--action-low", "-2", "--action-high", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: actions[3, 0] = -9 lies outside") and err.count("\n") == 1
    assert snapshot(root) == []


def test_the_data_command_dispatches_import(root, tmp_path):
    import subprocess
    import sys

    path = save(logged(), tmp_path / "log.npz")
    cmd = [sys.executable, "-m", "iql_tutorial", "data", "import", str(path), "--id", "me/test/sub-v0"]
    env = {**os.environ, "MINARI_DATASETS_PATH": str(root)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2 and proc.stderr.startswith("error: no action bounds")
    proc = subprocess.run([*cmd, "--action-low", "-2", "--action-high", "2"], capture_output=True, text=True,
                          env=env, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "me/test/sub-v0" in minari.list_local_datasets()


def test_module_docstring_documents_every_array_name():
    for name in importer.KNOWN:
        assert f"``{name}``" in importer.__doc__
