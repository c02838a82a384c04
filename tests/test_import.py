"""Importing your own arrays as a Minari dataset: round trips, and every bad input refused in one
line with nothing left behind."""

import os
import subprocess
import sys
import time
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


def test_the_import_help_names_every_array_it_reads(capsys):
    """What a user reads before importing: ``data import --help`` names every array the importer
    knows (a new one cannot be added without telling them)."""
    from iql_tutorial.datasets.cli import main as data_main

    with pytest.raises(SystemExit):
        data_main(["import", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(name in text for name in importer.KNOWN), text


# ------------------------------------------------------------------- one writer per dataset (issue 30)
# ``python -c PAUSED_IMPORT ready go ARGS...``: ``data import ARGS`` whose forked writer writes its
# PID into ``ready`` and waits for ``go`` to exist (forever if ``go`` is "-") before it writes
PAUSED_IMPORT = """
import os, sys, time
from pathlib import Path
from iql_tutorial.data import minari_writer
ready, go = Path(sys.argv[1]), sys.argv[2]
write = minari_writer.create_compact
def paused(*args, **kwargs):
    ready.write_text(str(os.getpid()))
    while go == "-" or not Path(go).exists():
        time.sleep(0.02)
    return write(*args, **kwargs)
minari_writer.create_compact = paused
from iql_tutorial.data.importer import main
sys.exit(main(sys.argv[3:]))
"""
REPO = Path(__file__).resolve().parents[1]


def import_cmd(path: Path, dataset_id: str, *extra: str) -> list[str]:
    return [str(path), "--id", dataset_id, "--action-low", "-2", "--action-high", "2", *extra]


def start_paused_import(tmp_path: Path, root: Path, args: list[str], go: str) -> tuple[subprocess.Popen, int]:
    """A ``data import`` paused inside its writer; returns the process and its writer's PID."""
    ready = tmp_path / f"ready-{time.monotonic_ns()}"
    proc = subprocess.Popen([sys.executable, "-c", PAUSED_IMPORT, str(ready), go, *args], cwd=REPO, text=True,
                            env={**os.environ, "MINARI_DATASETS_PATH": str(root)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.time() + 120
    while not (ready.exists() and ready.read_text()):
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "the import never reached its writer"
        time.sleep(0.02)
    return proc, int(ready.read_text())


def gone(pid: int) -> bool:
    """The process no longer runs (exited, or a zombie waiting for its reaper)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_two_imports_of_one_id_at_once_keep_the_first_dataset_byte_identical(root, tmp_path, capsys):
    small = save(logged(seed=0), tmp_path / "a.npz")
    other = logged(seed=1)
    other["observations"] = other["observations"][:, :2]  # another shape
    other["next_observations"] = other["next_observations"][:, :2]
    second = save(other, tmp_path / "b.npz")
    go = tmp_path / "go"
    first, _ = start_paused_import(tmp_path, root, import_cmd(small, "me/test/one-v0"), str(go))
    try:
        busy = main(import_cmd(second, "me/test/one-v0"))  # a second process's import, from this one
    finally:
        go.touch()
        out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    err = capsys.readouterr().err
    assert busy == 2 and err.count("\n") == 1, err
    assert f"dataset me/test/one-v0 is being written by PID {first.pid}" in err
    kept = files(root / "me/test/one-v0")
    assert main(import_cmd(second, "me/test/one-v0")) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--force" in err
    assert files(root / "me/test/one-v0") == kept
    assert [p.name for p in root.iterdir() if p.name.startswith(".")] == []  # no lock, no temporary folder


def test_an_import_that_passed_the_first_check_is_refused_under_the_lock(root, monkeypatch):
    """The race of issue 30: B checks the id (free), A writes the dataset meanwhile, B must not
    replace it: B checks again under the lock, right before its rename."""
    build = importer.build_episodes

    def meanwhile(*args, **kwargs):  # B is validating its arrays while A imports the same id
        monkeypatch.setattr(importer, "build_episodes", build)
        import_arrays(logged(seed=0), "me/test/race-v0", action_low=-2, action_high=2)
        return build(*args, **kwargs)

    monkeypatch.setattr(importer, "build_episodes", meanwhile)
    with pytest.raises(ValueError, match="already exists.*another import wrote it meanwhile"):
        import_arrays(logged(seed=1), "me/test/race-v0", action_low=-2, action_high=2)
    obs = load_dataset("me/test/race-v0").transitions.obs.numpy()
    np.testing.assert_array_equal(obs, logged(seed=0)["observations"])  # A's, untouched


def test_a_killed_import_leaves_no_writer_and_the_next_command_removes_its_folder(root, tmp_path, capsys):
    from iql_tutorial.datasets.cli import main as data_main

    path = save(logged(), tmp_path / "a.npz")
    proc, writer = start_paused_import(tmp_path, root, import_cmd(path, "me/test/killed-v0"), "-")
    hidden = [p for p in root.iterdir() if p.name.startswith(".import-") and p.is_dir()]
    assert len(hidden) == 1
    proc.kill()  # SIGKILL: no handler runs
    proc.communicate(timeout=120)
    deadline = time.time() + 10
    while not gone(writer) and time.time() < deadline:
        time.sleep(0.05)
    assert gone(writer), "the forked writer outlived its parent"
    assert data_main(["list"]) == 0
    listed = capsys.readouterr().out
    assert f"note: removed {hidden[0]}" in listed and f"process {proc.pid} is gone" in listed
    assert [p.name for p in root.iterdir() if p.name.startswith(".")] == []  # folder and lock both gone


def test_sigterm_stops_an_import_and_its_writer_and_leaves_nothing(root, tmp_path):
    path = save(logged(), tmp_path / "a.npz")
    proc, writer = start_paused_import(tmp_path, root, import_cmd(path, "me/test/term-v0"), "-")
    proc.terminate()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert err.strip() == "interrupted: nothing was imported (an existing dataset with this id is unchanged)."
    assert gone(writer)
    assert snapshot(root) == []


# --------------------------------------------------------------- values and ids (issue 30, item 3 and 4)
def set_at(a: np.ndarray, index, value: float) -> np.ndarray:
    """``a`` as float64 (finite up to 1.8e308) with ``value`` at ``index``."""
    a = a.astype(np.float64)
    a[index] = value
    return a


@pytest.mark.parametrize(
    "name, change, match",
    [
        ("rewards", lambda a: set_at(a, 5, 1e39), r"'rewards' holds 1e\+39 at row 5 .*float32"),
        ("observations", lambda a: set_at(a, (9, 2), -1e39), r"'observations' holds -1e\+39 at row 9"),
        ("observations", lambda a: a.astype(np.complex64), r"'observations' has complex dtype complex64"),
        ("observations", lambda a: a[:, :0], r"'observations' has shape \(60, 0\): rows without a single value"),
    ],
    ids=["reward-beyond-float32", "obs-beyond-float32", "complex", "no-columns"],
)
def test_values_float32_cannot_hold_complex_and_empty_arrays_are_refused(root, name, change, match):
    a = logged()
    a.pop("next_observations")
    a[name] = change(a[name])
    refused(root, match, import_arrays, a, "me/test/bad-v0", action_low=-2, action_high=2)


def test_observations_outside_the_environments_space_are_refused(root):
    a = logged()
    a.pop("next_observations")
    a["observations"] = np.clip(a["observations"], -1, 1)
    a["observations"][4, 2] = 9.0  # Pendulum's angular velocity lies in [-8, 8]
    refused(root, r"observations\[4, 2\] = 9 lies outside the environment's observation space \[-8, 8\]",
            import_arrays, a, "me/test/bad-v0", env_id="Pendulum-v1")  # fmt: skip


@pytest.mark.parametrize("dataset_id", ["../escape/evil-v0", "../../outside_ds/evil-v0", "me/./t/ok-v0",
                                        "me/.hidden/t-v0"])  # fmt: skip
def test_ids_with_dot_parts_are_refused_before_anything_is_created(root, tmp_path, dataset_id):
    msg = refused(root, "each part of an id is a plain name", import_arrays, logged(), dataset_id,
                  action_low=-2, action_high=2)  # fmt: skip
    assert "write" not in msg
    assert sorted(p.name for p in tmp_path.iterdir()) == ["minari"]  # nothing beside the datasets' folder


def test_data_list_shows_damaged_datasets_as_broken(root, capsys):
    from iql_tutorial.datasets.cli import main as data_main

    for name in ("ok", "garbage", "deleted", "truncated"):
        import_arrays(logged(), f"me/test/{name}-v0", action_low=-2, action_high=2)
    (root / "me/test/garbage-v0/data/metadata.json").write_text("{not json")
    (root / "me/test/deleted-v0/data/main_data.hdf5").unlink()
    main_data = root / "me/test/truncated-v0/data/main_data.hdf5"
    main_data.write_bytes(main_data.read_bytes()[:2000])
    assert data_main(["list"]) == 0
    out = capsys.readouterr().out
    assert "other datasets there (imported or downloaded; train with --dataset ID): 1\n  me/test/ok-v0\n" in out
    assert "me/test/garbage-v0: metadata.json cannot be read (JSONDecodeError)" in out
    assert "me/test/deleted-v0: main_data.hdf5 is missing" in out
    assert "me/test/truncated-v0: main_data.hdf5 cannot be opened (truncated, 0.0 MB)" in out
    book = root / "iqlbook/pendulum/medium-v0/data"  # one of the book's, damaged: its row says so
    book.mkdir(parents=True)
    (book / "metadata.json").write_text("garbage")
    (book / "main_data.hdf5").write_bytes(b"")
    assert data_main(["list"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("iqlbook/pendulum/medium-v0"))
    assert row.endswith(
        "broken: metadata.json cannot be read (JSONDecodeError) (rebuild: data build pendulum-medium --force)"
    )


@pytest.mark.parametrize("value", ["", "file"])
def test_minari_datasets_path_empty_or_a_file_is_one_line(tmp_path, monkeypatch, capsys, value):
    from iql_tutorial.datasets.cli import main as data_main

    if value:
        value = str(tmp_path / "a-file")
        Path(value).write_text("x")
    monkeypatch.setenv("MINARI_DATASETS_PATH", value)
    assert data_main(["list"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: MINARI_DATASETS_PATH")
    assert ("is set but empty" if not value else "is a file, not a folder") in err
    assert main([str(save(logged(), tmp_path / "a.npz")), "--id", "me/test/x-v0", "--action-low", "-2",
                 "--action-high", "2"]) == 2  # fmt: skip
    assert capsys.readouterr().err.startswith("error: MINARI_DATASETS_PATH")


def test_the_rebuild_hint_is_for_the_books_datasets_only():
    from iql_tutorial.data.loader import _repair_hint

    assert "data build pendulum-medium" in _repair_hint("iqlbook/pendulum/medium-v0")
    hint = _repair_hint("me/test/x-v0")
    assert "data build" not in hint and "data import FILE --id me/test/x-v0 --force" in hint


def test_a_full_disk_during_an_import_is_named(root, monkeypatch):
    import errno

    from iql_tutorial.data import minari_writer

    def full(*args, **kwargs):  # in the forked writer, as h5py would fail
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def silent(*args, **kwargs):  # a writer that could not even report
        os._exit(1)

    for writer, disk_full in ((full, False), (silent, True)):
        monkeypatch.setattr(minari_writer, "create_compact", writer)
        monkeypatch.setattr(importer, "_disk_full", lambda root, full=disk_full: full)
        with pytest.raises(OSError) as e:
            import_arrays(logged(), "me/test/full-v0", action_low=-2, action_high=2)
        assert str(e.value).startswith(
            f"cannot write dataset me/test/full-v0 into {root}: No space left on device; the disk is full"
        )
        assert snapshot(root) == []
