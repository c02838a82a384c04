"""Load any Minari dataset into device-resident transitions.

``load_dataset("iqlbook/pendulum/medium-v0")`` reads a dataset made by this project;
``load_dataset("mujoco/hopper/medium-v0")`` reads Minari's official one (downloaded when the
network allows, or already in ``MINARI_DATASETS_PATH``). The result holds everything
training and evaluation need: transitions on the device, the action scaling between the
environment and the policy's [-1, 1], the reward scale, and the reference scores.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from iql_tutorial.data.transitions import Transitions

REPO_DATA_DIR = Path(__file__).resolve().parents[2] / "data"
REWARD_NORMALIZATIONS = ("none", "locomotion", "shift")


def datasets_path() -> Path:
    """Where Minari datasets are read and written: ``$MINARI_DATASETS_PATH``, which this
    package points at the repository's ``data/`` folder unless you set it yourself. Set to nothing,
    or to a file, it is a one-line ``ValueError``."""
    value = os.environ.get("MINARI_DATASETS_PATH", str(REPO_DATA_DIR))
    if not value.strip():
        raise ValueError(
            "MINARI_DATASETS_PATH is set but empty; point it at the folder of your datasets, or unset it to use "
            f"the repository's {REPO_DATA_DIR}."
        )
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise ValueError(
            f"MINARI_DATASETS_PATH={value} is a file, not a folder; point it at the folder of your datasets, or "
            f"unset it to use the repository's {REPO_DATA_DIR}."
        )
    return path


def list_local_ids() -> list[str]:
    """Ids of every Minari dataset under ``datasets_path()`` (none if that folder does not exist)."""
    import minari

    if not datasets_path().is_dir():
        return []
    with warnings.catch_warnings():  # a broken dataset is skipped (``data list`` shows it as broken)
        warnings.simplefilter("ignore")
        return sorted(minari.list_local_datasets().keys())


DATASET_ID = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*-v\d+$")


def check_dataset_id(dataset_id: str) -> None:
    """A one-line error for an id that cannot name a dataset: a short name of the book's
    datasets (``pendulum-medium``, which ``data build`` accepts) gets its full id as the hint;
    anything else not of the form NAMESPACE/TASK/NAME-vN lists the local datasets. A well-formed
    id that is not local passes (``load_dataset`` may download it)."""
    if not isinstance(dataset_id, str) or not dataset_id:
        raise ValueError(f"dataset id {dataset_id!r} is empty; give an id such as iqlbook/pendulum/medium-v0.")
    if DATASET_ID.match(dataset_id) or dataset_id in list_local_ids():
        return
    from iql_tutorial.data.catalogue import RECIPES, resolve  # the book's short names (failure path only)

    try:
        recipe = resolve(dataset_id)
    except KeyError:
        recipe = None
    if recipe is not None and recipe.dataset_id != dataset_id:
        built = dataset_id_is_local(recipe.dataset_id)
        then = "" if built else f" (build it first: python -m iql_tutorial data build {recipe.short})"
        raise ValueError(
            f"dataset '{dataset_id}' is a short name, which only `data build` takes; give its id: "
            f"--dataset {recipe.dataset_id}{then}."
        )
    local = list_local_ids()
    known = local or [r.dataset_id for r in RECIPES.values()]
    where = f"the datasets in {datasets_path()}" if local else "the book's datasets"
    raise ValueError(
        f"dataset '{dataset_id}' is not a dataset id (NAMESPACE/TASK/NAME-vN, e.g. iqlbook/pendulum/medium-v0); "
        f"{where}: {', '.join(known[:12])}{', ...' if len(known) > 12 else ''} (python -m iql_tutorial data list)."
    )


def dataset_id_is_local(dataset_id: str) -> bool:
    return dataset_id in list_local_ids()


def reward_dim_message(dataset_id: str, got: int, want: int) -> str:
    """The one line for a dataset whose rewards have another width than the config's weights."""
    if want == 1:
        fix = (
            f"give one weight per component to sum them into one reward: --reward-weights "
            f"{' '.join(['1'] * got)} (reward_weights=({', '.join(['1.0'] * got)}))"
        )
    else:
        fix = f"give {got} reward weights (one per component), not {want}"
    return f"Dataset {dataset_id} has {got}-dimensional rewards but the config expects {want}: {fix}."


@dataclass
class ActionScaler:
    """Affine map between environment actions in [low, high] and policy actions in [-1, 1]."""

    low: np.ndarray
    high: np.ndarray

    def to_policy(self, a: np.ndarray) -> np.ndarray:
        return 2.0 * (a - self.low) / (self.high - self.low) - 1.0

    def to_env(self, a: np.ndarray) -> np.ndarray:
        return self.low + (np.clip(a, -1.0, 1.0) + 1.0) * 0.5 * (self.high - self.low)


@dataclass
class OfflineDataset:
    """Transitions on a device plus what is needed to evaluate a policy trained on them."""

    dataset_id: str
    transitions: Transitions
    action_scaler: ActionScaler
    reward_scale: float = 1.0
    reward_shift: float = 0.0
    ref_min_score: float | None = None
    ref_max_score: float | None = None
    episode_returns: np.ndarray = field(default_factory=lambda: np.zeros(0))
    minari_dataset: Any = None
    fingerprint: dict[str, Any] | None = None  # data_fingerprint(transitions), taken when loaded

    def data_fingerprint(self) -> dict[str, Any]:
        """``fingerprint`` (taken when loaded), or the transitions' own now."""
        return self.fingerprint if self.fingerprint is not None else data_fingerprint(self.transitions)

    @property
    def obs_dim(self) -> int:
        return self.transitions.obs_dim

    @property
    def act_dim(self) -> int:
        return self.transitions.act_dim

    def normalized_score(self, returns: np.ndarray | float) -> np.ndarray:
        """100 * (return - ref_min) / (ref_max - ref_min), as D4RL and Minari define it."""
        if self.ref_min_score is None or self.ref_max_score is None:
            raise ValueError(f"Dataset {self.dataset_id} has no ref_min_score/ref_max_score: no normalized score.")
        return (
            100.0
            * (np.asarray(returns, dtype=np.float64) - self.ref_min_score)
            / (self.ref_max_score - self.ref_min_score)
        )

    @property
    def has_env(self) -> bool:
        """Whether the dataset names an environment to evaluate in. A dataset imported without
        one (``python -m iql_tutorial data import FILE --id ID`` with no ``--env``) does not: the
        trainer then logs offline diagnostics instead of scores."""
        ds = self.minari_dataset
        return ds is not None and (ds.spec.env_spec is not None or ds.storage.metadata.get("eval_env_spec") is not None)

    def make_env(self, **kwargs: Any) -> gym.Env:
        """The evaluation environment recorded in the dataset."""
        if self.minari_dataset is None:
            raise ValueError(f"Dataset {self.dataset_id} was not loaded from Minari; it has no environment.")
        if not self.has_env:
            raise ValueError(
                f"Dataset {self.dataset_id} names no environment (it was imported without --env), so there is "
                "nothing to evaluate a policy in; re-import it with --env ENV_ID, or read the offline diagnostics."
            )
        import iql_tutorial.envs  # noqa: F401  (registers the project's own environments)

        return self.minari_dataset.recover_environment(eval_env=True, **kwargs)


def data_fingerprint(t: Transitions) -> dict[str, Any]:
    """What a run records of the data it trains on (``run.json``'s ``data_fingerprint``): the
    counts and a SHA-1 hash of every array as training sees them (after the action scaling and
    the reward normalization): a check that the data is the same, not a security hash. Once per
    run: 2,000,000 transitions of HalfCheetah's shapes (376 MB) took 2.6 s on a 2-core VM that
    other processes kept busy (a load of 15); SHA-1 was hashlib's fastest there."""
    import hashlib

    h = hashlib.sha1(usedforsecurity=False)
    for name in ("obs", "actions", "rewards", "next_obs", "terminals", "timeouts", "episode_ids"):
        a = np.ascontiguousarray(getattr(t, name).detach().cpu().numpy())
        h.update(f"{name}:{a.dtype}:{a.shape}".encode())
        h.update(a.reshape(-1).view(np.uint8).data)
    return {
        "transitions": len(t),
        "episodes": int(torch.unique_consecutive(t.episode_ids).numel()),  # episodes are contiguous rows
        "obs_dim": t.obs_dim,
        "act_dim": t.act_dim,
        "hash": h.hexdigest(),
    }


def describe_fingerprint(fp: Any) -> str:
    """A ``data_fingerprint`` in words (anything else as it is)."""
    if not isinstance(fp, dict):
        return repr(fp)
    return (
        f"{fp.get('transitions')} transitions in {fp.get('episodes')} episodes, obs {fp.get('obs_dim')}, action "
        f"{fp.get('act_dim')}, hash {str(fp.get('hash'))[:12]}"
    )


def check_book_dataset_built(dataset_id: str) -> None:
    """A one-line ``FileNotFoundError`` for one of the book's datasets that is not built here: it
    is made by ``data build``, never downloaded (so no download hint applies)."""
    from iql_tutorial.data.catalogue import RECIPES

    if dataset_id in RECIPES and not dataset_id_is_local(dataset_id):
        raise FileNotFoundError(
            f"dataset {dataset_id} is one of the book's and is not built in {datasets_path()}: build it with "
            f"python -m iql_tutorial data build {RECIPES[dataset_id].short} (or point MINARI_DATASETS_PATH at "
            "the folder that holds it)."
        )


def unknown_dataset_error(dataset_id: str, cause: BaseException | None = None) -> FileNotFoundError:
    local = list_local_ids()
    listing = "\n  ".join(local) if local else "(none yet)"
    return FileNotFoundError(
        f"Unknown dataset id '{dataset_id}': it is not in {datasets_path()} and could not be downloaded"
        f"{f' ({type(cause).__name__}: {cause})' if cause else ''}.\n"
        f"Local datasets:\n  {listing}\n"
        "Build one of the project's datasets with `python -m iql_tutorial data build NAME` "
        "(`python -m iql_tutorial data list` shows them all), or, with internet access, use an "
        "official Minari id such as 'mujoco/hopper/medium-v0'."
    )


def flatten_obs(space: gym.Space, obs: Any) -> np.ndarray:
    if isinstance(space, gym.spaces.Box):
        return np.asarray(obs)
    if isinstance(space, gym.spaces.Dict):
        return np.concatenate(
            [np.asarray(obs[k]).reshape(len(np.asarray(obs[k])), -1) for k in sorted(space.spaces)], axis=1
        )
    raise ValueError(f"Observation space {space} is not supported: use a Box or a Dict of Boxes.")


def check_continuous(action_space: gym.Space, what: str) -> None:
    """IQL here learns a Gaussian policy: only bounded Box action spaces are accepted."""
    if not isinstance(action_space, gym.spaces.Box):
        raise ValueError(
            f"{what} has action space {action_space}, but this IQL supports continuous (Box) actions only: "
            "its policy is a Gaussian. For discrete actions use a discrete offline method (e.g. discrete CQL or BCQ)."
        )
    if not (np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))):
        raise ValueError(f"{what} has an unbounded action space {action_space}: the policy needs finite bounds.")


def episode_returns(t: Transitions) -> np.ndarray:
    """Undiscounted return of each episode (summed over reward dimensions)."""
    ids = t.episode_ids.cpu().numpy()
    r = t.rewards.sum(-1).double().cpu().numpy()
    return np.bincount(ids, weights=r)


def reward_normalization(returns: np.ndarray, norm: str) -> tuple[float, float]:
    """(scale, shift) so that r' = scale * r + shift.

    ``"locomotion"``: scale = 1000 / (max episode return - min episode return), the paper's
    normalisation for MuJoCo data. ``"shift"``: r - 1, the paper's choice for AntMaze (sparse
    0/1 rewards become -1/0). ``"none"``: unchanged.
    """
    if norm not in REWARD_NORMALIZATIONS:
        raise ValueError(f"reward normalization '{norm}' is unknown; choose one of {REWARD_NORMALIZATIONS}.")
    if norm == "locomotion":
        spread = float(returns.max() - returns.min()) if len(returns) else 0.0
        if not spread > 0 or not math.isfinite(spread):
            raise ValueError(
                "reward normalization 'locomotion' needs episodes with different returns "
                f"(got a spread of {spread}); use reward_norm='none' for this dataset."
            )
        return 1000.0 / spread, 0.0
    if norm == "shift":
        return 1.0, -1.0
    return 1.0, 0.0


def _repair_hint(dataset_id: str) -> str:
    """How to repair a damaged dataset: the book's own are rebuilt (``data build``), anything else
    (imported, downloaded) is imported or downloaded again."""
    from iql_tutorial.data.catalogue import RECIPES

    if dataset_id in RECIPES:
        return f"rebuild it (python -m iql_tutorial data build {RECIPES[dataset_id].short} --force)"
    return (
        "repair the arrays it was made from and import them again (python -m iql_tutorial data import FILE --id "
        f"{dataset_id} --force), or drop the episode"
    )


def transitions_from_minari(dataset: Any) -> Transitions:
    """Every episode of a MinariDataset as one table of transitions (on the CPU).

    Checks every episode while reading: a NaN or inf raises an error naming the episode
    and the field.
    """
    obs_space = dataset.spec.observation_space
    episodes = []
    for ep in dataset.iterate_episodes():
        d = {
            "observations": flatten_obs(obs_space, ep.observations),
            "actions": np.asarray(ep.actions, dtype=np.float64).reshape(len(ep.actions), -1),
            "rewards": np.asarray(ep.rewards, dtype=np.float64),
            "terminations": np.asarray(ep.terminations),
            "truncations": np.asarray(ep.truncations),
        }
        for name in ("observations", "actions", "rewards"):
            if not np.all(np.isfinite(d[name])):
                bad = np.argwhere(~np.isfinite(d[name].reshape(len(d[name]), -1)))[0, 0]
                raise ValueError(
                    f"Dataset {dataset.spec.dataset_id}: episode {ep.id} has NaN or inf in '{name}' at step {bad}. "
                    f"The data is corrupt: {_repair_hint(dataset.spec.dataset_id)}."
                )
        episodes.append(d)
    if not episodes:
        raise ValueError(f"Dataset {dataset.spec.dataset_id} holds no episodes.")
    return Transitions.from_episodes(episodes)


def load_dataset(
    dataset_id: str,
    device: str | torch.device = "cpu",
    reward_norm: str = "none",
    download: bool = True,
    reward_dim: int | None = None,
) -> OfflineDataset:
    """Load a Minari dataset by id into transitions on ``device``.

    Args:
        dataset_id: a local id (``python -m iql_tutorial data list``) or an official Minari id.
        device: where the transitions live (the whole dataset is copied there once).
        reward_norm: ``"none"``, ``"locomotion"`` (1000 / return spread, the paper's MuJoCo
            choice) or ``"shift"`` (r - 1, the paper's AntMaze choice).
        download: try Minari's remote server when the id is not local.
        reward_dim: the reward width the learner expects (``IQLConfig.reward_dim``); a dataset
            whose rewards have another width is refused before its rewards are normalized.

    Actions are rescaled from the environment's bounds to [-1, 1]; ``action_scaler`` maps back.
    """
    import minari

    if reward_norm not in REWARD_NORMALIZATIONS:
        raise ValueError(f"reward_norm='{reward_norm}' is unknown; choose one of {REWARD_NORMALIZATIONS}.")
    check_dataset_id(dataset_id)
    if dataset_id in list_local_ids():
        dataset = minari.load_dataset(dataset_id)
    else:
        check_book_dataset_built(dataset_id)
        if not download:
            raise unknown_dataset_error(dataset_id)
        try:
            dataset = minari.load_dataset(dataset_id, download=True)
        except Exception as e:  # no network here, or an id Minari's server does not know
            raise unknown_dataset_error(dataset_id, e) from None
    check_continuous(dataset.spec.action_space, f"Dataset {dataset_id}")
    t = transitions_from_minari(dataset)
    space = dataset.spec.action_space
    scaler = ActionScaler(np.asarray(space.low, dtype=np.float64), np.asarray(space.high, dtype=np.float64))
    t.actions = torch.as_tensor(scaler.to_policy(t.actions.double().numpy()), dtype=torch.float32)
    if reward_dim is not None and t.reward_dim != reward_dim:
        raise ValueError(reward_dim_message(dataset_id, t.reward_dim, reward_dim))
    returns = episode_returns(t)
    scale, shift = reward_normalization(returns, reward_norm)
    if scale != 1.0 or shift != 0.0:
        t.rewards = t.rewards * scale + shift
    meta = dataset.storage.metadata
    fingerprint = data_fingerprint(t)  # on the CPU, before the copy to the device
    return OfflineDataset(
        dataset_id=dataset_id,
        transitions=t.to(device),
        action_scaler=scaler,
        reward_scale=scale,
        reward_shift=shift,
        ref_min_score=meta.get("ref_min_score"),
        ref_max_score=meta.get("ref_max_score"),
        episode_returns=returns,
        minari_dataset=dataset,
        fingerprint=fingerprint,
    )
