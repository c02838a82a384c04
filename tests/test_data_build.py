"""Building datasets: deterministic rebuilds, the loader round trip, normalized scores, and errors."""

from __future__ import annotations

import json

import gymnasium as gym
import h5py
import minari
import numpy as np
import pytest
from minari.data_collector import EpisodeBuffer

from iql_tutorial.data import load_dataset, minari_io
from iql_tutorial.data.__main__ import main as cli
from iql_tutorial.data.loader import REPO_DATA_DIR
from iql_tutorial.data.recipes import RECIPES, build, ensure_dataset, resolve
from iql_tutorial.data.rollouts import episodes_from_replay

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # Minari's advice on metadata of test datasets


@pytest.fixture
def tmp_minari(tmp_path, monkeypatch):
    """A fresh, empty MINARI_DATASETS_PATH (behaviour policies are still read from the repository)."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    return tmp_path


def _same_file_contents(a, b) -> None:
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        assert sorted(fa) == sorted(fb)
        for ep in fa:
            assert sorted(fa[ep]) == sorted(fb[ep])
            for k in fa[ep]:
                np.testing.assert_array_equal(fa[ep][k][()], fb[ep][k][()], err_msg=f"{ep}/{k}")


@pytest.mark.parametrize("name", ["pendulum-random", "pendulum-medium", "pointmaze-umaze"])
def test_rebuild_equals_committed(tmp_minari, name):
    dataset_id = build(name)
    assert dataset_id == resolve(name).dataset_id
    _same_file_contents(REPO_DATA_DIR / dataset_id / "data" / "main_data.hdf5",
                        tmp_minari / dataset_id / "data" / "main_data.hdf5")  # fmt: skip
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
    assert "iqlbook/pendulum/medium-v0" in msg and "python -m iql_tutorial.data build" in msg


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
