"""Building datasets: deterministic rebuilds, the loader round trip, normalized scores, and errors."""

from __future__ import annotations

import json

import gymnasium as gym
import h5py
import minari
import numpy as np
import pytest
from minari.data_collector import EpisodeBuffer

from iql_tutorial.data import load_dataset
from iql_tutorial.data.loader import REPO_DATA_DIR
from iql_tutorial.datasets import minari_io
from iql_tutorial.datasets.cli import main as cli
from iql_tutorial.datasets.recipes import RECIPES, build, ensure_dataset, resolve
from iql_tutorial.datasets.rollouts import episodes_from_replay

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # Minari's advice on metadata of test datasets


@pytest.fixture
def tmp_minari(tmp_path, monkeypatch):
    """A fresh, empty MINARI_DATASETS_PATH (behaviour policies are still read from the repository)."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    return tmp_path


def _same_file_contents(a, b, float_tol: float = 0.0) -> None:
    """Same episodes, fields and shapes; flags exactly equal; floats equal, or within ``float_tol``
    times each field's largest magnitude."""
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        assert sorted(fa) == sorted(fb)
        for ep in fa:
            assert sorted(fa[ep]) == sorted(fb[ep])
            for k in fa[ep]:
                x, y = fa[ep][k][()], fb[ep][k][()]
                if float_tol and np.asarray(x).dtype.kind == "f":
                    assert x.shape == y.shape, f"{ep}/{k}"
                    np.testing.assert_allclose(x, y, rtol=0, atol=float_tol * np.abs(x).max(), err_msg=f"{ep}/{k}")
                else:
                    np.testing.assert_array_equal(x, y, err_msg=f"{ep}/{k}")


# A policy's float32 matmuls round differently on different CPUs (the committed data was built on
# an AMD Zen 4 VM; the same rebuild on an Intel Xeon differs by 1e-7 in the first actions), and
# Pendulum's dynamics grow that to at most 1e-3 of a field's range over an episode (measured).
# Rebuilds that involve no network are bit-identical everywhere.
POLICY_TOL = {"pendulum-random": 0.0, "pendulum-medium": 5e-3, "pointmaze-umaze": 0.0}


@pytest.mark.parametrize("name", sorted(POLICY_TOL))
def test_rebuild_equals_committed(tmp_minari, name):
    dataset_id = build(name)
    assert dataset_id == resolve(name).dataset_id
    _same_file_contents(REPO_DATA_DIR / dataset_id / "data" / "main_data.hdf5",
                        tmp_minari / dataset_id / "data" / "main_data.hdf5", POLICY_TOL[name])  # fmt: skip
    committed = json.loads((REPO_DATA_DIR / dataset_id / "data" / "metadata.json").read_text())
    rebuilt = json.loads((tmp_minari / dataset_id / "data" / "metadata.json").read_text())
    for k in ("total_steps", "total_episodes", "ref_min_score", "ref_max_score", "description", "env_spec"):
        assert committed[k] == rebuilt[k], k


def test_ensure_dataset_builds_once(tmp_minari):
    assert not minari_io.is_built("iqlbook/pendulum/random-v0")
    dataset_id = ensure_dataset("pendulum-random")
    path = tmp_minari / dataset_id / "data" / "main_data.hdf5"
    stamp = path.stat().st_mtime_ns
    assert ensure_dataset("iqlbook/pendulum/random-v0") == dataset_id and path.stat().st_mtime_ns == stamp
    build(dataset_id, force=True)
    assert path.stat().st_mtime_ns != stamp


def test_loader_round_trip_and_normalized_scores():
    d = load_dataset("iqlbook/pendulum/medium-v0")
    raw = minari.load_dataset("iqlbook/pendulum/medium-v0")
    eps = list(raw.iterate_episodes())
    assert len(d.transitions) == raw.total_steps == sum(len(e.actions) for e in eps)
    # actions: Pendulum's [-2, 2] become [-1, 1] and map back exactly
    t = d.transitions
    assert t.actions.abs().max() <= 1.0
    np.testing.assert_allclose(
        d.action_scaler.to_env(t.actions.numpy()), np.concatenate([e.actions for e in eps]), atol=1e-5
    )
    np.testing.assert_allclose(t.obs[:200].numpy(), eps[0].observations[:-1])
    np.testing.assert_allclose(t.next_obs[:200].numpy(), eps[0].observations[1:])
    assert t.timeouts.sum() == len(eps) and t.terminals.sum() == 0  # Pendulum only truncates
    np.testing.assert_allclose(d.episode_returns, [e.rewards.astype(np.float64).sum() for e in eps], rtol=1e-6)
    # normalized score by hand, from the reference scores in behaviour.json
    info = json.loads((REPO_DATA_DIR / "behaviour" / "pendulum" / "behaviour.json").read_text())
    lo, hi = info["ref_min_score"], info["ref_max_score"]
    assert d.ref_min_score == pytest.approx(lo) and d.ref_max_score == pytest.approx(hi)
    assert d.normalized_score(lo) == pytest.approx(0.0) and d.normalized_score(hi) == pytest.approx(100.0)
    assert d.normalized_score((lo + hi) / 2) == pytest.approx(50.0)
    r = -500.0
    assert d.normalized_score(r) == pytest.approx(100 * (r - lo) / (hi - lo))
    assert minari.get_normalized_score(raw, np.array([r]))[0] == pytest.approx(d.normalized_score(r) / 100)


def test_maze_dataset_recovers_its_environment():
    d = load_dataset("iqlbook/pointmaze/umaze-v0", reward_norm="shift")
    env = d.make_env()
    assert env.spec.id == "iql_tutorial/PointMaze-UMaze-v0" and env.spec.max_episode_steps == 300
    assert d.obs_dim == 2 and d.normalized_score(1.0) == pytest.approx(100.0)
    assert set(np.unique(d.transitions.rewards.numpy())) <= {-1.0, 0.0}


def test_unknown_id_lists_local_ids_and_the_build_command():
    with pytest.raises(FileNotFoundError) as e:
        load_dataset("iqlbook/pendulum/nonsense-v0", download=False)
    msg = str(e.value)
    assert "iqlbook/pendulum/medium-v0" in msg and "python -m iql_tutorial data build" in msg


def test_unknown_short_name_lists_known_names(capsys):
    with pytest.raises(KeyError, match="pendulum-medium-replay"):
        resolve("pendulum-mediocre")
    assert cli(["build", "pendulum-mediocre"]) == 2
    assert "iqlbook/pointmaze/umaze-v0" in capsys.readouterr().err


def test_list_command_shows_every_dataset(capsys):
    assert cli(["list"]) == 0
    out = capsys.readouterr().out
    for r in RECIPES.values():
        assert r.dataset_id in out
    assert "built" in out


def _tiny_dataset(dataset_id: str, nan_in: tuple[int, str] | None = None, env_id: str = "Pendulum-v1") -> None:
    env = gym.make(env_id)
    bufs = []
    for i in range(3):
        obs = np.zeros((6, env.observation_space.shape[0]), np.float32)
        acts = np.stack([env.action_space.sample() for _ in range(5)])
        rew = np.zeros(5, np.float32)
        if nan_in is not None and nan_in[0] == i:
            {"observations": obs, "actions": acts, "rewards": rew}[nan_in[1]].flat[3] = np.nan
        bufs.append(EpisodeBuffer(id=i, observations=obs, actions=acts, rewards=rew,
                                  terminations=np.zeros(5, bool), truncations=np.r_[np.zeros(4, bool), True]))  # fmt: skip
    minari.create_dataset_from_buffers(dataset_id, bufs, env=env_id, algorithm_name="test", author="test")


def test_nan_names_the_episode_and_field(tmp_minari):
    _tiny_dataset("tst/pendulum/nan-v0", nan_in=(1, "actions"))
    with pytest.raises(ValueError, match=r"episode 1 .*'actions'"):
        load_dataset("tst/pendulum/nan-v0", download=False)


def test_writer_refuses_nan_and_bad_episodes(tmp_minari):
    env = gym.make("Pendulum-v1")
    ep = {"observations": np.zeros((4, 3), np.float32), "actions": np.zeros((3, 1), np.float32),
          "rewards": np.array([0.0, np.nan, 0.0], np.float32), "terminations": np.zeros(3, bool),
          "truncations": np.array([False, False, True])}  # fmt: skip
    kw = dict(observation_space=env.observation_space, action_space=env.action_space, ref_min_score=0.0,
              ref_max_score=1.0, description="x", algorithm_name="x")  # fmt: skip
    with pytest.raises(ValueError, match=r"episode 0: NaN or inf in 'rewards'"):
        minari_io.write_dataset("tst/pendulum/bad-v0", [ep], "Pendulum-v1", **kw)
    ep["rewards"] = np.zeros(3, np.float32)
    ep["truncations"] = np.array([True, False, True])
    with pytest.raises(ValueError, match="only end at its last step"):
        minari_io.write_dataset("tst/pendulum/bad-v0", [ep], "Pendulum-v1", **kw)
    ep["truncations"] = np.array([False, False, True])
    minari_io.write_dataset("tst/pendulum/bad-v0", [ep], "Pendulum-v1", **kw)
    with pytest.raises(FileExistsError, match="force"):
        minari_io.write_dataset("tst/pendulum/bad-v0", [ep], "Pendulum-v1", **kw)


def test_forced_rebuild_that_fails_part_way_keeps_the_old_dataset(tmp_minari, monkeypatch):
    env = gym.make("Pendulum-v1")
    kw = dict(observation_space=env.observation_space, action_space=env.action_space, ref_min_score=0.0,
              ref_max_score=1.0, description="x", algorithm_name="x")  # fmt: skip

    def episode(reward):
        return {"observations": np.zeros((4, 3), np.float32), "actions": np.zeros((3, 1), np.float32),
                "rewards": np.full(3, reward, np.float32), "terminations": np.zeros(3, bool),
                "truncations": np.array([False, False, True])}  # fmt: skip

    path = minari_io.write_dataset("tst/pendulum/keep-v0", [episode(1.0)], "Pendulum-v1", **kw)
    real = minari_io.create_compact

    def dies_part_way(dataset_id, *args, **kwargs):
        # the new dataset is written completely, then the build fails before it is in place
        real(dataset_id, *args, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(minari_io, "create_compact", dies_part_way)
    with pytest.raises(OSError, match="No space left"):
        minari_io.write_dataset("tst/pendulum/keep-v0", [episode(2.0)] * 2, "Pendulum-v1", force=True, **kw)
    # the old dataset, whole, and no temporary folder left beside it
    np.testing.assert_array_equal(minari_io.episode_returns("tst/pendulum/keep-v0"), [3.0])
    assert sorted(p.name for p in path.parent.iterdir()) == ["keep-v0", "namespace_metadata.json"]
    assert not [p for p in minari_io.datasets_path().iterdir() if p.name.startswith(".import-")]
    monkeypatch.setattr(minari_io, "create_compact", real)
    minari_io.write_dataset("tst/pendulum/keep-v0", [episode(2.0)] * 2, "Pendulum-v1", force=True, **kw)
    np.testing.assert_array_equal(minari_io.episode_returns("tst/pendulum/keep-v0"), [6.0, 6.0])


def test_discrete_actions_are_rejected(tmp_minari):
    env = gym.make("CartPole-v1")
    bufs = [EpisodeBuffer(id=0, observations=np.zeros((4, 4), np.float32), actions=np.array([0, 1, 0]),
                          rewards=np.ones(3), terminations=np.array([False, False, True]),
                          truncations=np.zeros(3, bool))]  # fmt: skip
    minari.create_dataset_from_buffers("tst/cartpole/d-v0", bufs, env=env, algorithm_name="t", author="t")
    with pytest.raises(ValueError, match="continuous"):
        load_dataset("tst/cartpole/d-v0", download=False)


def test_episodes_from_replay_splits_and_cuts():
    space = gym.spaces.Box(-2.0, 2.0, (1,), np.float32)
    n = 7
    replay = {
        "obs": np.arange(n, dtype=np.float32)[:, None], "next_obs": np.arange(1, n + 1, dtype=np.float32)[:, None],
        "actions": np.full((n, 1), 0.5, np.float32), "rewards": np.ones(n, np.float32),
        "terminals": np.array([0, 0, 1, 0, 0, 0, 0], bool), "truncations": np.array([0, 0, 0, 0, 1, 0, 0], bool),
    }  # fmt: skip
    eps = episodes_from_replay(replay, upto=6, space=space)
    assert [len(e["actions"]) for e in eps] == [3, 2, 1]
    assert eps[0]["terminations"][-1] and eps[1]["truncations"][-1] and eps[2]["truncations"][-1]
    np.testing.assert_array_equal(eps[1]["observations"].ravel(), [3, 4, 5])
    assert np.allclose(eps[0]["actions"], 1.0)  # 0.5 in [-1, 1] is 1.0 in [-2, 2]


def _h5_episodes(path) -> list[dict[str, np.ndarray]]:
    """Every episode of a Minari HDF5 file, in episode order, read with h5py alone."""
    with h5py.File(path, "r") as f:
        names = sorted(f, key=lambda n: int(n.split("_")[-1]))
        return [{k: f[n][k][()] for k in ("observations", "actions", "rewards", "terminations", "truncations")}
                for n in names]  # fmt: skip


def test_medium_expert_is_medium_then_expert_and_equals_committed(tmp_minari):
    """From the committed medium and expert parts, the build is their episodes in that order,
    byte-for-byte the committed medium-expert dataset."""
    import shutil

    for kind in ("medium", "expert"):
        shutil.copytree(REPO_DATA_DIR / f"iqlbook/pendulum/{kind}-v0", tmp_minari / f"iqlbook/pendulum/{kind}-v0")
    dataset_id = build("pendulum-medium-expert")
    assert dataset_id == "iqlbook/pendulum/medium-expert-v0"
    rel = f"{dataset_id}/data/main_data.hdf5"
    _same_file_contents(REPO_DATA_DIR / rel, tmp_minari / rel)
    medium = _h5_episodes(REPO_DATA_DIR / "iqlbook/pendulum/medium-v0/data/main_data.hdf5")
    expert = _h5_episodes(REPO_DATA_DIR / "iqlbook/pendulum/expert-v0/data/main_data.hdf5")
    both = _h5_episodes(tmp_minari / rel)
    assert len(both) == len(medium) + len(expert) == 200
    for got, want in zip(both, medium + expert, strict=True):
        for k in want:
            np.testing.assert_array_equal(got[k], want[k], err_msg=k)
    meta = json.loads((tmp_minari / dataset_id / "data" / "metadata.json").read_text())
    committed = json.loads((REPO_DATA_DIR / dataset_id / "data" / "metadata.json").read_text())
    for k in ("total_steps", "total_episodes", "ref_min_score", "ref_max_score", "description", "env_spec"):
        assert meta[k] == committed[k], k
    assert meta["total_steps"] == sum(len(e["actions"]) for e in medium + expert)


def test_medium_expert_from_nothing_builds_its_parts_deterministically(tmp_minari, tmp_path, monkeypatch):
    """With no parts on disk, building medium-expert builds medium and expert first (a tiny
    budget: two episodes each); building everything again from nothing gives the same files."""
    import dataclasses
    import importlib
    import shutil

    recipes = importlib.import_module(build.__module__)
    monkeypatch.setitem(recipes.SAC_ENVS, "pendulum", dataclasses.replace(recipes.SAC_ENVS["pendulum"], episodes=2))
    files = {
        k: tmp_minari / f"iqlbook/pendulum/{k}-v0/data/main_data.hdf5" for k in ("medium", "expert", "medium-expert")
    }
    build("pendulum-medium-expert")
    assert all(minari_io.is_built(f"iqlbook/pendulum/{k}-v0") for k in files)
    medium, expert, both = (_h5_episodes(files[k]) for k in ("medium", "expert", "medium-expert"))
    assert len(medium) == len(expert) == 2 and len(both) == 4
    for got, want in zip(both, medium + expert, strict=True):
        for k in want:
            np.testing.assert_array_equal(got[k], want[k], err_msg=k)
    assert not np.array_equal(medium[0]["actions"], expert[0]["actions"])  # two different policies
    saved = tmp_path / "first"
    shutil.copytree(tmp_minari / "iqlbook", saved)
    shutil.rmtree(tmp_minari / "iqlbook")
    build("pendulum-medium-expert")
    for f in files.values():
        _same_file_contents(saved / f.relative_to(tmp_minari / "iqlbook"), f)


def test_medium_replay_prefix_reproduces_the_committed_sac_run(tmp_path):
    """The committed medium-replay data is the SAC run's replay buffer. Rerunning that run (its
    recorded config and seed) for its uniform-random warm-up gives the same transitions bit for
    bit (after the warm-up, float rounding of the updates differs between machines)."""
    from iql_tutorial.datasets.sac import SACConfig, replay_arrays, to_env_action, train_sac

    training = json.loads((REPO_DATA_DIR / "behaviour" / "pendulum" / "behaviour.json").read_text())["training"]
    cfg = SACConfig(**{**training["sac_config"], "hidden": tuple(training["sac_config"]["hidden"])})
    n = cfg.start_steps
    assert n >= 1000  # a prefix of ten episodes at least
    _, buf, _ = train_sac("Pendulum-v1", n, tmp_path / "sac", cfg, seed=training["seed"], snapshot_every=10**9,
                          progress=False)  # fmt: skip
    run = replay_arrays(buf)
    assert len(run["obs"]) == n
    eps = _h5_episodes(REPO_DATA_DIR / "iqlbook/pendulum/medium-replay-v0/data/main_data.hdf5")
    cat = {k: np.concatenate([e[k] for e in eps])[:n] for k in ("actions", "rewards", "terminations", "truncations")}
    np.testing.assert_array_equal(np.concatenate([e["observations"][:-1] for e in eps])[:n], run["obs"])
    np.testing.assert_array_equal(np.concatenate([e["observations"][1:] for e in eps])[:n], run["next_obs"])
    np.testing.assert_array_equal(cat["rewards"], run["rewards"])
    space = gym.make("Pendulum-v1").action_space
    np.testing.assert_array_equal(cat["actions"], to_env_action(run["actions"], space).astype(np.float32))
    np.testing.assert_array_equal(cat["terminations"], run["terminals"])
    np.testing.assert_array_equal(cat["truncations"], run["truncations"])


def test_medium_replay_build_cuts_the_replay_at_the_medium_snapshot(tmp_minari, tmp_path, monkeypatch):
    """``build`` on a small SAC run's replay buffer (its replay.npz) cut at 550 steps: two whole
    200-step Pendulum episodes and the running one cut at 150 steps and marked truncated;
    rebuilding gives the same file."""
    import importlib

    from iql_tutorial.datasets.sac import SACConfig, to_env_action, train_sac

    train_sac("Pendulum-v1", 700, tmp_path / "sac", SACConfig(hidden=(16, 16), batch_size=16, start_steps=300),
              seed=3, snapshot_every=10**9, checkpoint_dir=tmp_path / "cache", progress=False)  # fmt: skip
    with np.load(tmp_path / "cache" / "replay.npz") as z:
        replay = {k: z[k] for k in z.files}
    assert len(replay["rewards"]) == 700
    recipes = importlib.import_module(build.__module__)  # where build looks its helpers up
    real_info = recipes.read_behaviour("pendulum")
    monkeypatch.setattr(recipes, "load_replay", lambda key: replay if key == "pendulum" else {}[key])
    monkeypatch.setattr(recipes, "read_behaviour", lambda key: {**real_info, "medium_replay_steps": 550})

    dataset_id = build("pendulum-medium-replay", force=True)
    path = tmp_minari / dataset_id / "data" / "main_data.hdf5"
    eps = _h5_episodes(path)
    assert [len(e["actions"]) for e in eps] == [200, 200, 150]
    for i, e in enumerate(eps):
        sl = slice(200 * i, 200 * i + len(e["actions"]))
        np.testing.assert_array_equal(e["observations"][:-1], replay["obs"][sl])
        np.testing.assert_array_equal(e["observations"][1:], replay["next_obs"][sl])
        np.testing.assert_array_equal(e["rewards"], replay["rewards"][sl])
        space = gym.make("Pendulum-v1").action_space
        np.testing.assert_array_equal(e["actions"], to_env_action(replay["actions"][sl], space).astype(np.float32))
        assert e["truncations"][-1] and not e["truncations"][:-1].any() and not e["terminations"].any()
    meta = json.loads((tmp_minari / dataset_id / "data" / "metadata.json").read_text())
    assert meta["total_steps"] == 550 and meta["total_episodes"] == 3
    assert meta["ref_min_score"] == pytest.approx(real_info["ref_min_score"])
    assert meta["ref_max_score"] == pytest.approx(real_info["ref_max_score"])
    first = tmp_path / "first.hdf5"
    first.write_bytes(path.read_bytes())
    build("pendulum-medium-replay", force=True)
    _same_file_contents(first, path)  # deterministic
    d = load_dataset(dataset_id, download=False)
    assert len(d.transitions) == 550 and d.transitions.timeouts.sum() == 3
