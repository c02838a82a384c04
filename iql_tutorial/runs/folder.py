"""A run folder, shared by offline training and fine-tuning: one writer, resume, logs, checkpoints.

``RunFolder.open(out)`` creates the folder and takes its lock (``run.lock``, created atomically
with ``O_CREAT | O_EXCL``, which holds on NFS v3+ and other shared filesystems, unlike
``fcntl`` locks); the lock names its holder: host, PID and start time. A second writer, on this
host or another, is refused with one line naming the holder; a lock left by a process that no
longer exists on this host (``kill -9``, a crash) is taken over with a note. A lock from another
host is never taken over, since this host cannot see whether its process lives: delete it by
hand once that process is gone. The lock itself is ``utils.lock.FolderLock``, which the importer
also takes, one per dataset id.

``resume_or_start`` decides, from ``run.json``, whether the folder holds this run (resume it:
"resuming from step N"), another run (a one-line error naming the fields that differ) or
nothing (start it, saying so when ``--resume`` was asked for). ``close`` releases the lock and,
when the run failed before writing its ``run.json``, removes the folder it created, so a failed
start leaves nothing behind; a run that failed before its first checkpoint is started over by a
retry with the same settings (there is nothing to resume), so the retry shows its own error. Every ``OSError`` (permissions, disk full, file-size limit) comes
out as one line naming the path and the cause (``utils.WriteError``).
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from iql_tutorial.runs.csvlog import CsvLog
from iql_tutorial.utils import WriteError, atomic_write_text, load_checkpoint, os_cause, save_checkpoint
from iql_tutorial.utils.lock import FolderBusy, FolderLock

LOCK_NAME = "run.lock"


#: another process writes into the run folder (or did, on another host)
RunFolderBusy = FolderBusy


class Interrupted(Exception):
    """Ctrl-C during a run: the step it reached and the step of its last checkpoint."""

    def __init__(self, out: Path, step: int, saved: int | None) -> None:
        self.out, self.step, self.saved = out, step, saved
        kept = (
            f"last checkpoint at step {saved}" if saved is not None else "no checkpoint yet, so a resume starts it over"
        )
        super().__init__(f"interrupted at step {step} ({kept}); resume with --resume")


def one_line(e: BaseException) -> str:
    """An error's message on one line (whitespace runs, newlines included, become one space)."""
    return " ".join(str(e).split()) or type(e).__name__


#: the errors a command line prints as one line (exit status 2); anything else is a bug: a traceback
ERRORS = (ValueError, TypeError, OSError, MemoryError, RunFolderBusy)

R = TypeVar("R")


def run_command(work: Callable[[], R], done: Callable[[R], str]) -> int:
    """A run's command line (train, finetune): ``work()``, then ``print(done(result))``; returns
    the exit status, 0. Ctrl-C is one line and 130 (``Interrupted``: the step reached and how to
    resume; before the run started: that nothing was written); an error of ``ERRORS`` is one line,
    ``error: ...``, and 2. Whatever drew a progress bar has closed it (in a ``finally``) by then,
    so that the line starts a line of its own."""
    try:
        result = work()
    except Interrupted as e:
        print(str(e), file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted before the run started; nothing was written.", file=sys.stderr)
        return 130
    except ERRORS as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    print(done(result))
    return 0


class RunLock(FolderLock):
    """The lock file of one run folder (``run.lock``); see ``utils.lock.FolderLock``."""

    def __init__(self, folder: str | Path) -> None:
        super().__init__(folder, Path(folder) / LOCK_NAME)

    def cannot_write(self, path: Path, e: OSError) -> WriteError:
        return WriteError(f"cannot write the run folder's lock {path}: {os_cause(e)}")

    def busy(self, who: str) -> str:
        return (
            f"{self.folder} is in use by {who}: one process writes into a run folder at a time. Wait "
            f"for it to finish, or choose another --out; if that process is gone, delete {self.path}."
        )


def differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """``field: A in run.json, B now`` for every (nested) field where ``old`` and ``new`` differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for k in sorted(set(old) | set(new), key=str):
            name = f"{prefix}{k}"
            if k not in old:
                out.append(f"{name}: absent in run.json, {new[k]!r} now")
            elif k not in new:
                out.append(f"{name}: {old[k]!r} in run.json, absent now")
            else:
                out.extend(differences(old[k], new[k], name + "."))
        return out
    if isinstance(old, (list, tuple)) and isinstance(new, (list, tuple)):
        old, new = list(old), list(new)
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} in run.json, {new!r} now"]


def read_run_json(path: Path) -> dict[str, Any]:
    """``run.json`` as a dict, or a one-line ``ValueError`` naming the file that failed to parse."""
    try:
        text = path.read_text()
    except OSError as e:
        raise WriteError(f"cannot read {path}: {os_cause(e)}") from None
    try:
        data = json.loads(text)
    except ValueError as e:
        raise ValueError(
            f"{path} cannot be parsed ({type(e).__name__}: {e}); it is damaged. Restore it, or choose another "
            "--out to start a new run."
        ) from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds {type(data).__name__}, not a run's settings; choose another --out.")
    return data


def mismatch_message(folder: Path, diff: list[str], action: str = "resume", flag: str = "--out") -> str:
    """One line: the folder, the differing fields and the fix."""
    extend = ""
    if any(d.startswith(("steps:", "iql.total_steps:")) for d in diff):
        extend = (
            " A run's length cannot be changed after it started (the actor's cosine schedule is fixed by "
            f"steps): to train longer, start a new run in another {flag}."
        )
    return (
        f"Cannot {action} {folder}: its run.json differs from this configuration in {'; '.join(diff)}. "
        f"Use the same settings, or choose another {flag}; nothing was trained or overwritten.{extend}"
    )


class RunFolder:
    """A run folder this process writes into, locked (see the module docstring)."""

    def __init__(self, path: Path, lock: RunLock, created: bool, what: str, step_key: str = "step") -> None:
        self.path, self.lock, self.created, self.what = path, lock, created, what
        self.step_key = step_key  # the checkpoint's entry for the step it reached
        self.started = False  # run.json written (by this process or an earlier one)
        self.saved_step: int | None = None  # the step of the last checkpoint written or resumed from
        self.progress_step = 0  # the step the run has reached (the trainer keeps it current)
        self.recorded: dict[str, Any] = {}  # the run.json found at the start, as written (empty: none)

    @classmethod
    def open(cls, out: str | Path, what: str = "run", step_key: str = "step") -> RunFolder:
        """Create ``out`` (and its parents) if needed and take its lock. ``step_key``: the
        checkpoint's entry for the step it reached (``env_step`` for fine-tuning)."""
        path = Path(out)
        if path.exists() and not path.is_dir():
            raise FileExistsError(f"--out {path} is an existing file, not a folder; choose another --out.")
        created = not path.exists()
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise WriteError(f"cannot create the run folder {path}: {os_cause(e)}") from None
        lock = RunLock(path)
        try:
            note = lock.acquire()
        except BaseException:
            if created:
                _remove_empty(path)
            raise
        if note:
            print(f"note: {note}", file=sys.stderr)
        return cls(path, lock, created, what, step_key)

    # ------------------------------------------------------------------------------ resume
    def resume_or_start(
        self,
        identity: dict[str, Any],
        resume: bool,
        normalize: Callable[[dict[str, Any]], dict[str, Any]] = lambda d: d,
        describe: Callable[[dict[str, Any]], str] = lambda d: "",
        progress: bool = True,
    ) -> dict[str, Any] | None:
        """The checkpoint to resume from, or None to start the run; refuses a folder that holds
        another run or something else. ``normalize`` brings an older run.json up to date."""
        run_path, ckpt_path = self.path / "run.json", self.path / "checkpoint.pt"
        if not run_path.exists():
            others = sorted(p.name for p in self.path.iterdir() if p.name != LOCK_NAME)
            if others:
                raise FileExistsError(
                    f"Output folder {self.path} is not empty ({', '.join(others[:3])}"
                    f"{', ...' if len(others) > 3 else ''}) and holds no run of this package; refusing to write "
                    "into it. Choose another --out."
                )
            if resume:
                print(f"note: --resume: {self.path} holds no {self.what} yet, so a new one starts.", file=sys.stderr)
            return None
        recorded = read_run_json(run_path)
        self.recorded = json.loads(json.dumps(recorded))  # a copy: normalize may change its argument
        previous = normalize(recorded)
        self.started = True
        diff = differences(previous, identity)
        if not resume and not diff and not ckpt_path.exists():
            print(
                f"note: {self.path} holds this {self.what}, stopped before its first checkpoint: starting it over.",
                file=sys.stderr,
            )
            return None
        if not resume:
            raise FileExistsError(
                f"Output folder {self.path} already holds a {self.what}{describe(previous)}. Pass --resume to "
                "continue it, or choose another --out to start a new one; nothing was overwritten."
            )
        if diff:
            raise ValueError(mismatch_message(self.path, diff))
        if not ckpt_path.exists():
            if progress:
                print(f"note: {self.path} has no checkpoint yet: starting the {self.what} over.", file=sys.stderr)
            return None
        ckpt = load_checkpoint(ckpt_path)
        for key in ("agent", self.step_key):
            if not isinstance(ckpt, dict) or key not in ckpt:
                raise ValueError(
                    f"Checkpoint {ckpt_path} has no '{key}' entry, so it is not a checkpoint of this {self.what} "
                    f"(another kind of run's, or another program's); restore this run's checkpoint, or choose "
                    "another --out to start a new one; nothing was trained or overwritten."
                )
        step = ckpt[self.step_key]
        self.saved_step = int(step) if step is not None else None
        if step is not None:
            self.progress_step = int(step)
        if progress:
            print(f"resuming {self.path} from step {step}", file=sys.stderr)
        return ckpt

    def start(self, identity: dict[str, Any], logs: list[CsvLog]) -> None:
        """A fresh run (or one killed before its first checkpoint): its logs start over."""
        for log in logs:
            log.path.unlink(missing_ok=True)
        try:
            atomic_write_text(self.path / "run.json", json.dumps(identity, indent=2))
        except OSError as e:
            raise WriteError(f"cannot write {self.path / 'run.json'}: {os_cause(e)}") from None
        self.started = True

    def append_text(self, name: str, text: str) -> None:
        path = self.path / name
        try:
            with open(path, "a") as f:
                f.write(text)
        except OSError as e:
            raise WriteError(f"cannot write {path}: {os_cause(e)}") from None

    def save(self, state: dict[str, Any], step: int) -> None:
        save_checkpoint(self.path / "checkpoint.pt", state)
        self.saved_step = step

    # ------------------------------------------------------------------------------ closing
    def close(self, ok: bool, discard: bool = False) -> None:
        """Release the lock. A run that failed (or was interrupted) before it wrote its run.json,
        in a folder this process created, leaves no folder behind; so does one that failed with
        ``discard`` (out of memory) before its first checkpoint."""
        self.lock.release()
        if not ok and self.created and (not self.started or discard):
            shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.close(ok=exc_type is None)


def _remove_empty(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass
