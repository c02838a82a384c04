"""Your own logged data as a Minari dataset: named arrays in, ``minari.load_dataset(id)`` out.

Command line::

    python -m iql_tutorial data import log.npz --id me/pendulum/pd-noisy-v0 --env Pendulum-v1 \\
        --ref-min -1200 --ref-max -150
    python -m iql_tutorial data import log.h5 --id me/arm/teleop-v0 --action-low -1 --action-high 1

Python::

    from iql_tutorial.data.importer import import_arrays, import_file
    import_arrays({"observations": obs, "actions": act, ...}, "me/arm/teleop-v0", action_low=-1, action_high=1)

The file (``.npz`` or HDF5, arrays at its top level) holds one row per transition, in the order
they were logged, episodes one after another:

============================  ==========  ==================================================
array                         shape       meaning
============================  ==========  ==================================================
``observations``              [T, d]      the state the action was taken in
``actions``                   [T, a]      continuous actions, inside the declared bounds
``rewards``                   [T] / [T,k] the reward (k components allowed)
``terminals``                 [T]         1 where the episode ended in a terminal state
``timeouts``                  [T]         1 where the episode was cut (time limit, end of log)
``episode_ends`` (instead)    [E] / [T]   end offsets (exclusive: cumulative lengths, the last
                                          one = T), or a boolean flag per row
``next_observations`` (opt.)  [T, d]      the state after the action
============================  ==========  ==================================================

Every episode must end in a terminal or a timeout row. Without ``next_observations`` the next
state is the next row's observation; the final transition of a *truncated* episode, whose next
state is not in the file, is dropped (as D4RL's ``qlearning_dataset`` does), and a terminated
episode's unobserved final state is stored as a copy of its last observation (no learner
bootstraps from it: ``1 - terminal = 0``). Observations, actions and rewards are stored as
float32.

Without ``env_id`` the dataset names no environment: the action space is the Box given by
``action_low``/``action_high`` (the range your actuator accepts; the policy's [-1, 1] is mapped
onto it) and the trainer logs offline diagnostics instead of scores. With ``env_id`` the spaces are
the environment's (bounds given as well must lie inside them) and ``ref_min_score``/
``ref_max_score`` give the normalized score.

Every problem is a ``ValueError`` with a one-line message naming the array, the row and the fix,
raised before anything is written: NaN or inf, values that float32 (what is stored) cannot hold,
complex or empty arrays, observations outside ``--env``'s space, an id with an empty, ``.`` or
``..`` part.

One writer per dataset: an import takes a lock per id (a hidden ``.import-lock.*`` file under
``MINARI_DATASETS_PATH``, the run folders' kind of lock: ``utils.lock``), so a second import of the
same id is refused in one line naming the first. The dataset is written into a hidden temporary
folder (``.import-PID-...``) and moved into place at the end: without ``--force`` only where no
dataset is (checked again under the lock, right before the rename), with ``--force`` swapped with
the old one in one step (Linux's ``renameat2``). A failed import leaves nothing behind; a killed
one (SIGTERM is handled as Ctrl-C; the forked writer dies with its parent, even on SIGKILL) leaves
a temporary folder that the next import or ``data list`` removes, saying so.
"""

from __future__ import annotations

import argparse
import errno
import os
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from iql_tutorial.data.loader import check_continuous, datasets_path
from iql_tutorial.utils import WriteError, first_line, os_cause, write_error
from iql_tutorial.utils.lock import FolderBusy, FolderLock, owner_alive, process_tag

REQUIRED = ("observations", "actions", "rewards", "terminals")
OPTIONAL = ("timeouts", "episode_ends", "next_observations")
KNOWN = REQUIRED + OPTIONAL
ID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*-v\d+$")
NPZ_MAGIC, HDF5_MAGIC = b"PK\x03\x04", b"\x89HDF\r\n\x1a\n"


@dataclass
class ImportResult:
    """What ``import_arrays`` wrote."""

    dataset_id: str
    path: Path
    episodes: int
    transitions: int
    obs_dim: int
    act_dim: int
    reward_dim: int
    env_id: str | None
    action_low: np.ndarray
    action_high: np.ndarray
    dropped: int  # final transitions of truncated episodes dropped (no next observation in the file)

    def summary(self) -> str:
        env = f"environment {self.env_id}" if self.env_id else "no environment (offline diagnostics only)"
        drop = f"; dropped {self.dropped} final transition(s) of truncated episodes" if self.dropped else ""
        return (
            f"imported {self.episodes} episodes ({self.transitions} transitions, obs {self.obs_dim}, "
            f"action {self.act_dim}, reward {self.reward_dim}) as {self.dataset_id} at {self.path}; {env}{drop}"
        )


def _fail(msg: str) -> ValueError:
    return ValueError(" ".join(msg.split()))  # one line, whatever the message was built from


# ---------------------------------------------------------------------------------------- reading
def read_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """The known arrays (``KNOWN``) of an ``.npz`` or HDF5 file; other arrays are ignored."""
    path = Path(path)
    if not path.exists():
        raise _fail(f"file {path} does not exist: give the path of an .npz or HDF5 file of named arrays.")
    if path.is_dir():
        raise _fail(f"{path} is a folder, not a file: give the path of an .npz or HDF5 file of named arrays.")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise _fail(f"cannot read file {path}: {e.strerror or type(e).__name__}; check its permissions.") from None
    kind = "npz" if head.startswith(NPZ_MAGIC) else "hdf5" if head == HDF5_MAGIC else None
    if kind is None:
        raise _fail(
            f"file {path} is neither an .npz (np.savez) nor an HDF5 file (h5py); save your arrays with "
            "np.savez(path, observations=..., actions=..., ...) or as top-level HDF5 datasets."
        )
    try:
        if kind == "npz":
            with np.load(path, allow_pickle=False) as z:
                return {k: np.asarray(z[k]) for k in z.files if k in KNOWN}
        import h5py

        with h5py.File(path, "r") as f:
            return {k: np.asarray(f[k][()]) for k in f if k in KNOWN and isinstance(f[k], h5py.Dataset)}
    except Exception as e:  # a damaged zip or HDF5 file, or pickled objects in an .npz
        raise _fail(
            f"file {path} cannot be read as {kind} ({type(e).__name__}: {first_line(e)}); it is damaged or not "
            "plain numeric arrays: save it again with np.savez or h5py."
        ) from None


# ------------------------------------------------------------------------------------- validating
def _rows(name: str, a: np.ndarray, width: bool) -> np.ndarray:
    """[T] -> [T, 1] where a width is expected; refuses more dimensions."""
    if a.ndim == 0:
        raise _fail(f"array '{name}' is a scalar; it needs one row per transition.")
    if width:
        if a.ndim == 1:
            return a.reshape(-1, 1)
        if a.ndim > 2:
            raise _fail(
                f"array '{name}' has shape {a.shape}; give [T, d] rows (flatten images or nested "
                f"observations first, e.g. {name}.reshape(len({name}), -1))."
            )
        if a.shape[1] == 0:
            raise _fail(f"array '{name}' has shape {a.shape}: rows without a single value; give [T, d] with d >= 1.")
        return a
    if a.ndim == 2 and a.shape[1] == 1:
        return a[:, 0]
    if a.ndim != 1:
        raise _fail(f"array '{name}' has shape {a.shape}; it needs one value per transition, shape [T].")
    return a


def _check_numeric(name: str, a: np.ndarray) -> None:
    if np.issubdtype(a.dtype, np.complexfloating):
        raise _fail(
            f"array '{name}' has complex dtype {a.dtype}: storing it as float32 would drop the imaginary parts; "
            f"give real and imaginary parts as separate columns, e.g. np.concatenate([{name}.real, {name}.imag], 1)."
        )
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_):
        raise _fail(f"array '{name}' has dtype {a.dtype}, not numbers; convert it to a float array.")


FLOAT32_MAX = float(np.finfo(np.float32).max)


def _check_finite(name: str, a: np.ndarray) -> None:
    """NaN or inf, and finite values that float32 (what is stored) cannot hold, name the first row."""
    if np.issubdtype(a.dtype, np.floating):
        bad = ~np.isfinite(a.reshape(len(a), -1)).all(axis=1)
        if bad.any():
            rows = np.flatnonzero(bad)
            raise _fail(
                f"array '{name}' holds NaN or inf at row {rows[0]} ({len(rows)} row(s) in all); "
                "drop or repair those transitions (and mark the episode ends around them) before importing."
            )
        if a.dtype.itemsize > 4:
            big = (np.abs(a.reshape(len(a), -1)) > FLOAT32_MAX).any(axis=1)
            if big.any():
                rows = np.flatnonzero(big)
                value = a.reshape(len(a), -1)[rows[0]]
                raise _fail(
                    f"array '{name}' holds {value[np.abs(value) > FLOAT32_MAX][0]:.6g} at row {rows[0]} "
                    f"({len(rows)} row(s) in all), beyond float32's range (+-{FLOAT32_MAX:.4g}), in which datasets "
                    "are stored: it would become inf; rescale the array (or repair those rows) before importing."
                )


def _check_flags(name: str, a: np.ndarray) -> np.ndarray:
    _check_numeric(name, a)
    _check_finite(name, a)
    if not np.isin(a, (0, 1)).all():
        row = int(np.flatnonzero(~np.isin(a, (0, 1)))[0])
        raise _fail(f"array '{name}' must hold 0/1 (or booleans), but row {row} is {a[row].item()!r}.")
    return a.astype(bool)


def _episode_ends(arrays: Mapping[str, np.ndarray], terminals: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(end rows, truncation flags [T]) from ``timeouts`` and/or ``episode_ends``."""
    timeouts = _check_flags("timeouts", _rows("timeouts", arrays["timeouts"], False)) if "timeouts" in arrays else None
    if "episode_ends" not in arrays:
        assert timeouts is not None
        ends = np.flatnonzero(terminals | timeouts)
        if len(ends) == 0 or ends[-1] != n - 1:
            raise _fail(
                f"the last transition (row {n - 1}) is neither terminal nor timeout, so the last episode has no end; "
                f"set timeouts[{n - 1}] = 1 if logging stopped there (or drop the unfinished episode)."
            )
        return ends, timeouts
    e = np.asarray(arrays["episode_ends"])
    if e.dtype == np.bool_:
        e = _rows("episode_ends", e, False)
        if len(e) != n:
            raise _fail(
                f"boolean 'episode_ends' has {len(e)} rows but there are {n} transitions; give one flag per row."
            )
        ends = np.flatnonzero(e)
        if len(ends) == 0 or ends[-1] != n - 1:
            raise _fail(
                f"episode_ends does not cover the end: the last transition (row {n - 1}) is not flagged as an episode "
                f"end; set episode_ends[{n - 1}] = True if logging stopped there (or drop the unfinished episode)."
            )
    else:
        if not np.issubdtype(e.dtype, np.integer):
            raise _fail(
                f"'episode_ends' has dtype {e.dtype}; give integer end offsets (cumulative episode lengths, "
                "exclusive, the last one = T) or one boolean flag per row."
            )
        e = e.reshape(-1)
        if len(e) == 0 or e[0] < 1 or np.any(np.diff(e) < 1):
            raise _fail(
                f"'episode_ends' must be strictly increasing positive end offsets (cumulative episode lengths), "
                f"got {e[:5].tolist()}{'...' if len(e) > 5 else ''}."
            )
        if e[-1] != n:
            what = "goes past" if e[-1] > n else "does not cover"
            raise _fail(
                f"episode_ends {what} the end: its last offset is {int(e[-1])} but there are {n} transitions; "
                f"the last episode needs an end offset of exactly {n} (drop the unfinished episode or append {n})."
            )
        ends = e - 1
    inner = np.flatnonzero(terminals)
    stray = np.setdiff1d(inner, ends)
    if len(stray):
        raise _fail(
            f"terminals[{stray[0]}] = 1 but episode_ends does not end an episode there; a terminal state ends "
            "its episode: add it to episode_ends, or fix terminals."
        )
    if timeouts is not None:
        flagged = np.flatnonzero(terminals | timeouts)
        if not np.array_equal(flagged, ends):
            row = int(np.setxor1d(flagged, ends)[0])
            raise _fail(
                f"'timeouts'/'terminals' and 'episode_ends' disagree at row {row}; give one of timeouts or "
                "episode_ends, or make them mark the same episode ends."
            )
        return ends, timeouts
    trunc = np.zeros(n, dtype=bool)
    trunc[ends] = ~terminals[ends]
    return ends, trunc


def _bounds(value: Any, name: str, act_dim: int) -> np.ndarray:
    b = np.asarray(value, dtype=np.float64).reshape(-1)
    if len(b) == 1:
        b = np.full(act_dim, b[0])
    if len(b) != act_dim:
        raise _fail(
            f"{name} has {len(b)} values but the actions have {act_dim} dimension(s); give one value or one per dimension."
        )
    if not np.all(np.isfinite(b)):
        raise _fail(f"{name} = {b.tolist()} is not finite; the policy needs finite action bounds.")
    return b


def _make_env(env_id: str) -> gym.Env:
    import iql_tutorial.envs  # noqa: F401  (registers the project's own environments)

    try:
        return gym.make(env_id)
    except Exception as e:
        raise _fail(
            f"environment '{env_id}' cannot be made ({type(e).__name__}: {first_line(e)}); check the id "
            "(gymnasium.pprint_registry() lists them) or import without --env."
        ) from None


def check_new_id(dataset_id: str) -> None:
    """A one-line ``ValueError`` unless ``dataset_id`` can name a new dataset: NAMESPACE/TASK/KIND-vN
    with no empty, ``.`` or ``..`` part (which would write outside ``MINARI_DATASETS_PATH``)."""
    if not isinstance(dataset_id, str) or not ID_PATTERN.match(dataset_id):
        raise _fail(
            f"dataset id {dataset_id!r} is not of the form NAMESPACE/TASK/KIND-v0 (letters, digits, _ . - and "
            "slashes, ending in a version such as -v0), e.g. 'me/pendulum/pd-noisy-v0'."
        )
    odd = [part for part in dataset_id.split("/") if part in ("", ".", "..") or part.startswith(".")]
    if odd:
        raise _fail(
            f"dataset id {dataset_id!r} has the part {odd[0]!r}: each part of an id is a plain name (no '.', '..' "
            "or leading dot), e.g. 'me/pendulum/pd-noisy-v0'."
        )


def _check_id(dataset_id: str, force: bool) -> Path:
    check_new_id(dataset_id)
    dest = datasets_path() / dataset_id
    if dest.exists() and not force:
        raise _fail(
            f"dataset {dataset_id} already exists at {dest}; pass --force (force=True) to replace it, or choose "
            "another id (e.g. a new version suffix)."
        )
    return dest


def build_episodes(
    arrays: Mapping[str, Any],
    *,
    env: gym.Env | None = None,
    action_low: Any = None,
    action_high: Any = None,
) -> tuple[list[dict[str, np.ndarray]], dict[str, Any]]:
    """Validate ``arrays`` and cut them into episodes in Minari's layout.

    Returns (episodes, info) with info holding the action bounds, the dimensions and the number
    of dropped transitions. Raises ``ValueError`` (one line) at the first problem.
    """
    obs, act, rew, nxt, terminals = _checked_arrays(arrays)
    ends, truncs = _episode_ends(arrays, terminals, len(obs))
    box = _checked_env(env, obs, nxt, act)
    low, high = _action_bounds(action_low, action_high, box, act)
    episodes, dropped = _cut_episodes(obs, act, rew, nxt, terminals, ends, truncs)
    if not episodes:
        raise _fail(
            "no transitions are left: every episode is a single truncated step whose next observation is not in "
            "the file; add next_observations."
        )
    info = {"low": low, "high": high, "obs_dim": obs.shape[1], "act_dim": act.shape[1], "reward_dim": rew.shape[1],
            "dropped": dropped}  # fmt: skip
    return episodes, info


def _checked_arrays(
    arrays: Mapping[str, Any],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """The known arrays checked (names, dtypes, lengths, shapes, finite values) as 2-D rows:
    (observations, actions, rewards, next_observations or None, terminals)."""
    arrays = {k: np.asarray(v) for k, v in arrays.items() if k in KNOWN}
    missing = [k for k in REQUIRED if k not in arrays]
    if "timeouts" not in arrays and "episode_ends" not in arrays:
        missing.append("timeouts (or episode_ends)")
    if missing:
        raise _fail(
            f"missing required array(s) {', '.join(missing)}; found {sorted(arrays) or 'none of the known names'}. "
            f"The names are {', '.join(REQUIRED)}, timeouts or episode_ends, and optionally next_observations."
        )
    act = arrays["actions"]
    if np.issubdtype(act.dtype, np.integer) or act.dtype == np.bool_:
        raise _fail(
            f"'actions' has integer dtype {act.dtype}: discrete actions, but this IQL learns a Gaussian policy over "
            "continuous actions; use a discrete offline method (e.g. discrete CQL), or cast to float if they are "
            "continuous values stored as integers."
        )
    for k in ("observations", "actions", "rewards", "next_observations"):
        if k in arrays:
            _check_numeric(k, arrays[k])
    obs = _rows("observations", arrays["observations"], True)
    act = _rows("actions", act, True)
    rew = _rows("rewards", arrays["rewards"], True)
    nxt = _rows("next_observations", arrays["next_observations"], True) if "next_observations" in arrays else None
    lengths = {k: len(arrays[k]) for k in ("observations", "actions", "rewards", "terminals", "timeouts",
                                           "next_observations") if k in arrays}  # fmt: skip
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{k} {v}" for k, v in lengths.items())
        raise _fail(f"arrays have different lengths ({listed}); every array needs one row per transition.")
    n = len(obs)
    if n == 0:
        raise _fail("the arrays hold no transitions (length 0).")
    if nxt is not None and nxt.shape != obs.shape:
        raise _fail(f"next_observations has shape {nxt.shape} but observations has {obs.shape}; they must match.")
    for k, a in (("observations", obs), ("next_observations", nxt), ("actions", act), ("rewards", rew)):
        if a is not None:
            _check_finite(k, a)
    terminals = _check_flags("terminals", _rows("terminals", arrays["terminals"], False))
    return obs, act, rew, nxt, terminals


def _checked_env(
    env: gym.Env | None, obs: np.ndarray, nxt: np.ndarray | None, act: np.ndarray
) -> gym.spaces.Box | None:
    """The environment's action space (None without an environment), once its spaces fit the
    data: the dimensions, and every observation inside the observation space."""
    box: gym.spaces.Box | None = None  # the environment's action space
    if env is not None:
        check_continuous(env.action_space, f"environment {env.spec.id if env.spec else env}")
        assert isinstance(env.action_space, gym.spaces.Box)  # check_continuous said so
        box = env.action_space
        space_obs = env.observation_space
        if not isinstance(space_obs, gym.spaces.Box) or int(np.prod(space_obs.shape)) != obs.shape[1]:
            raise _fail(
                f"the environment's observation space is {space_obs} but the observations have {obs.shape[1]} "
                "dimension(s); import with the environment the data came from, or without --env."
            )
        if act.shape[1] != int(np.prod(box.shape)):
            raise _fail(
                f"the environment's action space is {box} but the actions have {act.shape[1]} "
                "dimension(s); import with the environment the data came from, or without --env."
            )
        o_low = np.asarray(space_obs.low, np.float32).reshape(-1)
        o_high = np.asarray(space_obs.high, np.float32).reshape(-1)
        for k, x in (("observations", obs), ("next_observations", nxt)):
            if x is None:
                continue
            found = _first_outside(x, o_low, o_high)
            if found is not None:
                row, j, rows = found
                raise _fail(
                    f"{k}[{row}, {j}] = {x[row, j]:.6g} lies outside the environment's observation space "
                    f"[{o_low[j]:.6g}, {o_high[j]:.6g}] ({rows} row(s) in all); import with "
                    "the environment the data came from, or without --env."
                )
    return box


def _first_outside(x: np.ndarray, low: np.ndarray, high: np.ndarray) -> tuple[int, int, int] | None:
    """The first ``(row, column)`` of ``x`` [T, d] outside ``[low, high]`` per column, compared in
    float32 (the dataset's dtype), and how many rows have any value outside; ``None`` if none."""
    x32 = x.astype(np.float32)
    outside = (x32 < np.asarray(low, np.float32)) | (x32 > np.asarray(high, np.float32))
    if not outside.any():
        return None
    row, j = (int(v) for v in np.argwhere(outside)[0])
    return row, j, int(outside.any(axis=1).sum())


def _action_bounds(
    action_low: Any, action_high: Any, box: gym.spaces.Box | None, act: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The actions' bounds: given (inside the environment's, if any) or the environment's; every
    action must lie inside them."""
    if (action_low is None) != (action_high is None):
        raise _fail("give both --action-low and --action-high (action_low and action_high), or neither.")
    if action_low is None:
        if box is None:
            raise _fail(
                "no action bounds: without an environment give the range your actuator accepts with "
                "--action-low L --action-high H (action_low=, action_high=), or pass --env ENV_ID."
            )
        low = np.asarray(box.low, dtype=np.float64).reshape(-1)
        high = np.asarray(box.high, dtype=np.float64).reshape(-1)
    else:
        low, high = (
            _bounds(action_low, "--action-low", act.shape[1]),
            _bounds(action_high, "--action-high", act.shape[1]),
        )
        if np.any(low >= high):
            j = int(np.flatnonzero(low >= high)[0])
            raise _fail(f"action bounds are empty in dimension {j}: low {low[j]} >= high {high[j]}.")
        if box is not None:
            e_low, e_high = np.asarray(box.low).reshape(-1), np.asarray(box.high).reshape(-1)
            if np.any(low < e_low) or np.any(high > e_high):
                raise _fail(
                    f"action bounds {low.tolist()} to {high.tolist()} go beyond the environment's "
                    f"{e_low.tolist()} to {e_high.tolist()}; give bounds inside them, or leave them out."
                )
    found = _first_outside(act, low, high)
    if found is not None:
        row, j, rows = found
        raise _fail(
            f"actions[{row}, {j}] = {act[row, j]:.6g} lies outside the declared bounds [{low[j]:.6g}, {high[j]:.6g}] "
            f"({rows} row(s) in all); declare the range your controller really used "
            "(--action-low/--action-high), or clip the actions."
        )
    return low, high


def _cut_episodes(
    obs: np.ndarray,
    act: np.ndarray,
    rew: np.ndarray,
    nxt: np.ndarray | None,
    terminals: np.ndarray,
    ends: np.ndarray,
    truncs: np.ndarray,
) -> tuple[list[dict[str, np.ndarray]], int]:
    """The rows cut at ``ends`` into Minari's episodes (observations one longer than the actions);
    a truncated episode whose next state is not in the file loses its last transition. Returns the
    episodes and the number of transitions dropped."""
    episodes, dropped, start = [], 0, 0
    for i, end in enumerate(ends):
        rows = slice(start, end + 1)
        o = obs[rows]
        if nxt is not None:
            gap = ~np.isclose(nxt[start:end], obs[start + 1 : end + 1], rtol=1e-5, atol=1e-6).all(axis=1)
            if gap.any():
                r = start + int(np.flatnonzero(gap)[0])
                raise _fail(
                    f"next_observations[{r}] differs from observations[{r + 1}] inside episode {i} (rows {start}-{end}): "
                    f"consecutive rows of an episode must chain; if the log restarted there, set timeouts[{r}] = 1."
                )
            final, a, r_, te, tr = nxt[end : end + 1], act[rows], rew[rows], terminals[rows], truncs[rows]
        elif terminals[end]:
            final, a, r_, te, tr = obs[end : end + 1], act[rows], rew[rows], terminals[rows], truncs[rows]
        else:  # truncated, and its next state is not in the file: drop the last transition
            dropped += 1
            if end == start:
                start = end + 1
                continue
            o, final = obs[start:end], obs[end : end + 1]
            a, r_ = act[start:end], rew[start:end]
            te, tr = terminals[start:end].copy(), np.zeros(end - start, dtype=bool)
            tr[-1] = True
        episodes.append(
            {
                "observations": np.concatenate([o, final]).astype(np.float32),
                "actions": a.astype(np.float32),
                "rewards": (r_[:, 0] if r_.shape[1] == 1 else r_).astype(np.float32),
                "terminations": te.astype(bool),
                "truncations": (tr & ~te).astype(bool),
            }
        )
        start = end + 1
    return episodes, dropped


# ---------------------------------------------------------------------------------------- writing
def import_arrays(
    arrays: Mapping[str, Any],
    dataset_id: str,
    *,
    env_id: str | None = None,
    ref_min_score: float | None = None,
    ref_max_score: float | None = None,
    action_low: float | Sequence[float] | None = None,
    action_high: float | Sequence[float] | None = None,
    force: bool = False,
    description: str | None = None,
    source: str = "arrays",
) -> ImportResult:
    """Validate ``arrays`` (see the module docstring) and write them as Minari dataset ``dataset_id``
    under ``MINARI_DATASETS_PATH``; ``minari.load_dataset(dataset_id)`` and the package's
    ``load_dataset`` read it. Nothing is written when a check fails."""
    from iql_tutorial.data.minari_writer import create_compact  # h5py and Minari's writer: only now

    dest = _check_id(dataset_id, force)
    if (ref_min_score is None) != (ref_max_score is None):
        raise _fail("give both --ref-min and --ref-max (ref_min_score and ref_max_score), or neither.")
    if ref_min_score is not None:
        ref_min_score, ref_max_score = float(ref_min_score), float(ref_max_score)  # type: ignore[arg-type]
        if not (np.isfinite(ref_min_score) and np.isfinite(ref_max_score)) or ref_min_score == ref_max_score:
            raise _fail(f"reference scores must be finite and differ, got {ref_min_score} and {ref_max_score}.")
    env = _make_env(env_id) if env_id else None
    try:
        episodes, info = build_episodes(arrays, env=env, action_low=action_low, action_high=action_high)
        obs_space = env.observation_space if env is not None else None  # a Box: build_episodes checked
    finally:
        if env is not None:
            env.close()
    obs_dim = info["obs_dim"]
    observation_space = (
        gym.spaces.Box(np.asarray(obs_space.low, np.float32).reshape(-1), np.asarray(obs_space.high, np.float32).reshape(-1),
                       dtype=np.float32)
        if isinstance(obs_space, gym.spaces.Box)
        else gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
    )  # fmt: skip
    action_space = gym.spaces.Box(info["low"].astype(np.float32), info["high"].astype(np.float32), dtype=np.float32)
    root = datasets_path()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _write_failed(dataset_id, root, e) from None
    for note in remove_stale_imports(root):
        print(f"note: {note}", file=sys.stderr)
    lock = dataset_lock(root, dataset_id)
    took_over = lock.acquire()  # one writer per dataset id: a second import of it is refused, naming the first
    if took_over:
        print(f"note: {took_over}", file=sys.stderr)
    try:
        write_locked(
            root,
            dataset_id,
            dest,
            force,
            lambda: create_compact(
                dataset_id, episodes, env_id, observation_space=observation_space, action_space=action_space,
                ref_min_score=ref_min_score, ref_max_score=ref_max_score,
                description=description or f"Logged data imported by iql_tutorial from {source}.",
                algorithm_name=f"imported ({source})", author="iql_tutorial import",
            ),
        )  # fmt: skip
    finally:
        lock.release()
    return ImportResult(
        dataset_id=dataset_id,
        path=dest,
        episodes=len(episodes),
        transitions=sum(len(ep["actions"]) for ep in episodes),
        obs_dim=obs_dim,
        act_dim=info["act_dim"],
        reward_dim=info["reward_dim"],
        env_id=env_id,
        action_low=info["low"],
        action_high=info["high"],
        dropped=info["dropped"],
    )


def _exists_refusal(dataset_id: str, dest: Path, meanwhile: bool) -> ValueError:
    when = " (another import wrote it meanwhile)" if meanwhile else ""
    return _fail(
        f"dataset {dataset_id} already exists at {dest}{when}; pass --force (force=True) to replace it, or choose "
        "another id (e.g. a new version suffix). It was left as it is."
    )


def write_locked(root: Path, dataset_id: str, dest: Path, force: bool, write: Any) -> None:
    """Under the dataset's lock: ``write()`` into a hidden temporary folder, then move the
    dataset into place: without ``force`` only where no dataset is (checked again here, and by
    the rename itself), with ``force`` swapped with the old one in one step where Linux allows."""
    if dest.exists() and not force:
        raise _exists_refusal(dataset_id, dest, meanwhile=True)
    try:
        # hidden (Minari's listing skips it); named after this process, so that a later import or
        # ``data list`` removes it if this process is killed (remove_stale_imports)
        tmp_root = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{process_tag()}-{_host()}-", dir=root))
    except OSError as e:
        raise _write_failed(dataset_id, root, e) from None
    old_env = os.environ.get("MINARI_DATASETS_PATH")
    created: list[Path] = []
    try:
        os.environ["MINARI_DATASETS_PATH"] = str(tmp_root)
        built = _write_isolated(tmp_root, dataset_id, root, write)
        os.environ["MINARI_DATASETS_PATH"] = str(root) if old_env is None else old_env
        # the namespaces' metadata files Minari made, where the destination lacks them
        parts = dataset_id.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            ns = Path(*parts[:depth])
            if not (root / ns).exists():
                (root / ns).mkdir(exist_ok=True)
                created.append(root / ns)
            meta = tmp_root / ns / "namespace_metadata.json"
            if meta.exists() and not (root / ns / "namespace_metadata.json").exists():
                shutil.copyfile(meta, root / ns / "namespace_metadata.json")
        if not force and dest.exists():  # checked again right before the rename
            raise _exists_refusal(dataset_id, dest, meanwhile=True)
        if force and dest.exists():
            swap(built, dest)  # the old dataset ends in the temporary folder, removed below
        else:
            try:
                rename_new(built, dest)
            except FileExistsError:
                raise _exists_refusal(dataset_id, dest, meanwhile=True) from None
    except OSError as e:
        for d in reversed(created):
            _remove_empty(d)
        if isinstance(e, WriteError):
            raise
        raise _write_failed(dataset_id, root, e) from None
    except BaseException:
        for d in reversed(created):
            _remove_empty(d)
        raise
    finally:
        if old_env is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = old_env
        shutil.rmtree(tmp_root, ignore_errors=True)


def _remove_empty(path: Path) -> None:
    """Remove a namespace folder this import made, unless something else is in it by now."""
    try:
        if [p.name for p in path.iterdir()] == ["namespace_metadata.json"]:
            (path / "namespace_metadata.json").unlink()
        path.rmdir()
    except OSError:
        pass


# ------------------------------------------------------------------------------- one writer per id
TMP_PREFIX = ".import-"
LOCK_PREFIX = ".import-lock."


def dataset_lock(root: Path, dataset_id: str) -> FolderLock:
    """The lock of dataset ``dataset_id`` while it is written: a hidden file in ``root`` (the id's
    slashes as ``~``), taken as a run folder's lock is (``utils.lock``)."""

    class DatasetLock(FolderLock):
        def cannot_write(self, path: Path, e: OSError) -> WriteError:
            return _write_failed(dataset_id, root, e)

        def busy(self, who: str) -> str:
            return (
                f"dataset {dataset_id} is being written by {who}: one import of an id at a time. Wait for it to "
                f"finish (then pass --force to replace what it wrote), or choose another id; if that process is "
                f"gone, delete {self.path}."
            )

    return DatasetLock(
        root / dataset_id, root / f"{LOCK_PREFIX}{dataset_id.replace('/', '~')}", f"dataset {dataset_id}"
    )


def _host() -> str:
    """This host, as 8 hex digits (a folder under a shared MINARI_DATASETS_PATH may be another host's)."""
    import hashlib
    import socket

    return hashlib.sha1(socket.gethostname().encode(), usedforsecurity=False).hexdigest()[:8]


def remove_stale_imports(root: Path) -> list[str]:
    """Remove the hidden temporary folders (``.import-PID-START-HOST-*``) of imports on this host
    whose process no longer runs (killed with SIGKILL, or the machine went down); returns a note
    per folder. Another host's are left alone: this host cannot see whether their process runs."""
    notes = []
    try:
        found = [p for p in root.iterdir() if p.name.startswith(TMP_PREFIX) and p.is_dir()]
    except OSError:
        return []
    for path in sorted(found):
        pid, start, host, *_ = (*path.name[len(TMP_PREFIX) :].split("-"), "", "")
        if host != _host() or owner_alive(f"{pid}-{start}") is not False:
            continue  # a running import's, or not named by this package
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            notes.append(
                f"removed {path} ({size / 1e6:.1f} MB), left by an import that was killed (process {pid} is gone)"
            )
    for path in sorted(root.glob(f"{LOCK_PREFIX}*")):  # their locks: taken over (only if stale) and released
        lock = dataset_lock(root, path.name[len(LOCK_PREFIX) :].replace("~", "/"))
        try:
            lock.acquire()
        except (FolderBusy, OSError):
            continue
        lock.release()
    return notes


# Linux renameat2 flags: move only where nothing is, or swap two paths, each in one step
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2


def _renameat2(src: Path, dst: Path, flags: int) -> bool:
    """``renameat2(src, dst, flags)``; False where the system lacks it (then the caller falls back)."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    if fn(at_fdcwd, os.fsencode(src), at_fdcwd, os.fsencode(dst), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL):  # no renameat2 in this kernel, or not on this filesystem
        return False
    raise OSError(err, os.strerror(err), str(dst))


def rename_new(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst`` where nothing is: ``FileExistsError`` if ``dst`` exists."""
    if _renameat2(src, dst, RENAME_NOREPLACE):
        return
    if dst.exists():
        raise FileExistsError(errno.EEXIST, "exists", str(dst))
    os.rename(src, dst)


def swap(src: Path, dst: Path) -> None:
    """Put folder ``src`` in place of folder ``dst`` (the old one ends at ``src``): one step on
    Linux, so a reader sees the old dataset or the new one, never none; two renames elsewhere."""
    if _renameat2(src, dst, RENAME_EXCHANGE):
        return
    aside = src.with_name(src.name + ".old")
    os.replace(dst, aside)
    try:
        os.replace(src, dst)
    except OSError:
        os.replace(aside, dst)
        raise
    os.replace(aside, src)


NOTHING_IMPORTED = ". Nothing was imported (a dataset already there with this id is unchanged)."


def _write_failed(dataset_id: str, root: Path, cause: BaseException | str) -> WriteError:
    """Writing the dataset failed (disk full, file-size limit, permissions): one line in
    ``utils.write_error``'s words, ``cannot write dataset ID into ROOT: <cause>; <what to do>``,
    and that nothing was imported. ``cause``: the ``OSError``, or the writer process's words."""
    if isinstance(cause, BaseException):
        return write_error(f"dataset {dataset_id} into", root, cause, NOTHING_IMPORTED)
    return WriteError(f"cannot write dataset {dataset_id} into {root}: {cause}{NOTHING_IMPORTED}")


H5_ERROR = re.compile(r"errno = (\d+), error message = '([^']*)'")


def _write_isolated(tmp_root: Path, dataset_id: str, root: Path, write: Any) -> Path:
    """``write()`` (Minari's writer, through h5py) in a forked child process, whose output goes
    to a log file: a write that fails part way (disk full, file-size limit) makes h5py print
    hundreds of "Exception ignored" lines as its objects are finalized, and can crash the
    interpreter at exit. The child ends with ``os._exit`` (no finalizers); this process reads
    its result and turns any failure into one ``WriteError`` line naming the cause."""
    if not hasattr(os, "fork"):  # no fork (Windows): in this process
        try:
            return Path(write())
        except OSError as e:
            raise _write_failed(dataset_id, root, e) from None
    log = tmp_root / ".writer.log"
    sys.stdout.flush()
    sys.stderr.flush()
    parent = os.getpid()
    read_end, write_end = os.pipe()  # the result: through a pipe, which a full disk cannot stop
    # Ctrl-C and SIGTERM wait until the fork is done: one that came during it would be raised in
    # an at-fork callback (logging's), where Python ignores it, and the import would go on
    stops = {signal.SIGINT, signal.SIGTERM}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, stops)
    try:
        pid = os.fork()
    except BaseException:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        raise
    if pid == 0:  # the child: never returns
        code = 1
        os.close(read_end)
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a SIGTERM to the writer ends it at once
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            _die_with_parent(parent)
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            built = write()
            os.write(write_end, f"ok {built}".encode())
            code = 0
        except BaseException as e:
            try:
                said = os_cause(e) if isinstance(e, OSError) else f"{type(e).__name__}: {e}"
                os.write(write_end, ("error " + " ".join(said.split())[:500]).encode())
            except BaseException:
                pass
        finally:
            os._exit(code)
    os.close(write_end)
    try:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a stop that came meanwhile is raised here
        with os.fdopen(read_end, "rb") as pipe:
            text = pipe.read().decode(errors="replace")
        _, status = os.waitpid(pid, 0)
    except BaseException:  # Ctrl-C: stop the writer too (the caller removes the temporary folder)
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except OSError:
            pass
        raise
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 and text.startswith("ok "):
        return Path(text[3:])
    logged = log.read_text(errors="replace") if log.exists() else ""
    found = H5_ERROR.search(logged) or H5_ERROR.search(text)
    if found:  # the operating system's error behind HDF5's, e.g. errno 27 'File too large'
        cause: BaseException | str = OSError(int(found.group(1)), found.group(2))
    elif text.startswith("error "):
        cause = text[6:]
    elif os.WIFSIGNALED(status):
        cause = f"the writer process died of signal {os.WTERMSIG(status)}"
    elif _disk_full(root):
        cause = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    else:
        cause = "the writer process failed without saying why"
    raise _write_failed(dataset_id, root, cause)


def _disk_full(root: Path) -> bool:
    """Whether the filesystem of ``root`` has (almost) no space left: under 1 MB for this user."""
    try:
        return shutil.disk_usage(root).free < 1_000_000
    except OSError:
        return False


def _die_with_parent(parent: int) -> None:
    """Have the kernel kill this (forked writer) process when its parent dies, so an import killed
    with SIGKILL or SIGTERM (a job scheduler's) leaves no writer running (Linux's
    ``PR_SET_PDEATHSIG``; elsewhere nothing is done). Exits at once if the parent is gone already."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:
        os._exit(1)


def import_file(path: str | Path, dataset_id: str, **kwargs: Any) -> ImportResult:
    """``import_arrays`` of the arrays in an ``.npz`` or HDF5 file (see ``read_arrays``)."""
    _check_id(dataset_id, bool(kwargs.get("force", False)))  # before reading a large file
    return import_arrays(read_arrays(path), dataset_id, source=Path(path).name, **kwargs)


# ----------------------------------------------------------------------------------- command line
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m iql_tutorial data import",
        description="Import logged transitions (an .npz or HDF5 file of named arrays) as a Minari dataset.",
    )
    p.add_argument("file", help="an .npz or HDF5 file with observations, actions, rewards, terminals, "
                   "timeouts or episode_ends, and optionally next_observations")  # fmt: skip
    p.add_argument("--id", required=True, dest="dataset_id", help="the new dataset's id, NAMESPACE/TASK/KIND-v0")
    p.add_argument("--env", default=None, help="the gymnasium environment the data came from (enables evaluation)")
    p.add_argument("--ref-min", type=float, default=None, help="return of a random policy (normalized score 0)")
    p.add_argument("--ref-max", type=float, default=None, help="return of an expert (normalized score 100)")
    p.add_argument("--action-low", type=float, nargs="+", default=None, help="lower action bound(s)")
    p.add_argument("--action-high", type=float, nargs="+", default=None, help="upper action bound(s)")
    p.add_argument("--description", default=None, help="a sentence on where the data came from")
    p.add_argument("--force", action="store_true", help="replace a dataset with the same id")
    return p


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM (a job scheduler's): stop as Ctrl-C does, cleaning up


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread: SIGTERM is left as it is
        previous = None
    try:
        result = import_file(
            a.file,
            a.dataset_id,
            env_id=a.env,
            ref_min_score=a.ref_min,
            ref_max_score=a.ref_max,
            action_low=a.action_low,
            action_high=a.action_high,
            force=a.force,
            description=a.description,
        )
    except KeyboardInterrupt:
        print("interrupted: nothing was imported (an existing dataset with this id is unchanged).", file=sys.stderr)
        return 130
    except (ValueError, OSError, FolderBusy) as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    print(result.summary())
    print(f"train: python -m iql_tutorial train --dataset {result.dataset_id}")
    return 0
