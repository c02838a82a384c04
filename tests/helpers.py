"""Helpers shared by several test files (imported as ``from helpers import ...``; pytest puts tests/
on sys.path). Fixtures live in conftest.py; the tiny Minari datasets in _tiny_data.py."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from iql_tutorial import IQLConfig
from iql_tutorial.data import Transitions
from iql_tutorial.runs.finetune import FinetuneConfig
from iql_tutorial.runs.train import TrainConfig

REPO = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def minari_path(root):
    """Point MINARI_DATASETS_PATH at ``root`` for the duration, then restore it, so nothing
    leaks into later tests or into the notebooks nbmake runs in the same session."""
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        yield root
    finally:
        if old is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


# ------------------------------------------------------------------------------ runs in the process
def small_iql(**kw) -> IQLConfig:  # API: iql
    return IQLConfig(**{"hidden_dims": (16, 16), "batch_size": 16, **kw})


def train_config(out, **kw) -> TrainConfig:  # API: TrainConfig
    """An eager run on the CPU into ``out``; ``kw`` sets the rest. A test file binds its own
    defaults with ``functools.partial`` (keywords given at the call still win)."""
    return TrainConfig(**{"device": "cpu", "mode": "eager", "out": str(out), **kw})  # API: mode


def ft_config(offline, out, **kw) -> FinetuneConfig:  # API: FinetuneConfig
    """Eager fine-tuning on the CPU of the run in ``offline`` into ``out``; ``kw`` sets the rest
    (defaults bound per file with ``functools.partial``, as for ``train_config``)."""
    base = {"offline_run": str(offline), "out": str(out), "device": "cpu", "mode": "eager"}  # API: mode
    return FinetuneConfig(**{**base, **kw})


def zero_transitions(n: int) -> Transitions:
    """``n`` all-zero transitions (observations of 2, actions of 1), all of episode 0."""
    return Transitions(
        obs=torch.zeros(n, 2),
        actions=torch.zeros(n, 1),
        rewards=torch.zeros(n),
        next_obs=torch.zeros(n, 2),
        terminals=torch.zeros(n),
        timeouts=torch.zeros(n),
        episode_ids=torch.zeros(n, dtype=torch.int64),
    )


class Killed(Exception):
    """Raised by a patched function: the run dies at that point, as if the process were killed."""


def assert_same_state(a, b, where: str = "state") -> None:
    """Tensors bit for bit (and of the same dtype), containers recursively, everything else equal."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            assert_same_state(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_state(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


# ------------------------------------------------------------------------- the trainer as a process
# the command line of the trainer runs started as processes (60 steps on the tiny Pendulum data)
TRAIN = ["--dataset", "tests/pendulum/tiny-v0", "--device", "cpu", "--mode", "eager", "--hidden-dims", "16", "16",
         "--batch-size", "16", "--eval-episodes", "1", "--eval-every", "20", "--log-every", "10",
         "--checkpoint-every", "20", "--steps", "60", "--val-fraction", "0"]  # fmt: skip

# ``python -c PAUSED ready go STEP ARGS...``: the trainer's command line, paused right after it
# wrote the train_log.csv row of STEP (it touches ``ready``, then waits for ``go`` to exist), so a
# test can act while a real process holds the folder, at a known step.
PAUSED = """
import sys, time
from pathlib import Path
from iql_tutorial.runs import csvlog
ready, go, at = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
append = csvlog.CsvLog.append
def paused(self, row):
    append(self, row)
    if self.path.name == "train_log.csv" and int(row["step"]) == at:
        ready.touch()
        while not go.exists():
            time.sleep(0.02)
csvlog.CsvLog.append = paused
from iql_tutorial.runs.train import main
sys.exit(main(sys.argv[4:]))
"""


def env_for(root) -> dict[str, str]:
    return {**os.environ, "MINARI_DATASETS_PATH": str(root), "IQL_THREADS": "1", "PYTHONPATH": str(REPO)}


def default_sigint() -> None:
    """A shell without job control starts background commands with SIGINT ignored, and Python
    then installs no KeyboardInterrupt handler: give the child the default one back."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_paused(tmp_path: Path, root, out: Path, at: int, *extra: str) -> tuple[subprocess.Popen, Path, Path]:
    ready, go = tmp_path / f"ready-{out.name}", tmp_path / f"go-{out.name}"
    proc = subprocess.Popen(
        [sys.executable, "-c", PAUSED, str(ready), str(go), str(at), *TRAIN, "--out", str(out), *extra],
        env=env_for(root), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        preexec_fn=default_sigint,
    )  # fmt: skip
    deadline = time.time() + 300  # generous: the machine may be busy
    while not ready.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "the first writer never reached its pause"
        time.sleep(0.05)
    return proc, ready, go


def run_train(root, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "iql_tutorial", "train", *TRAIN, "--out", str(out), *extra],
                          env=env_for(root), capture_output=True, text=True, cwd=REPO, timeout=300)  # fmt: skip
