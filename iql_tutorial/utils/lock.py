"""One writer at a time: a lock file that names its holder, shared by run folders and datasets.

A ``FolderLock`` is a file created atomically with ``O_CREAT | O_EXCL`` (which holds on NFS v3+
and other shared filesystems, unlike ``fcntl`` locks); it names its holder: host, PID, the
process's start time and its command. A second writer, on this host or another, is refused with
one line naming the holder (``FolderBusy``); a lock left by a process that no longer exists on
this host (``kill -9``, a crash) is taken over with a note. A lock from another host is never
taken over, since this host cannot see whether its process lives: delete it by hand once that
process is gone.

``runs.folder.RunLock`` is the lock of a run folder (``run.lock``); ``data.importer`` takes one
per dataset id while it writes that dataset. ``owner_alive`` tells whether a process recorded by
PID and start time (``process_tag``) still runs, for the temporary folders a killed writer leaves.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from iql_tutorial.utils.files import WriteError, os_cause

EMPTY_LOCK_GRACE_S = 30.0  # an empty lock file younger than this is being written by its taker
TAKEOVER_GRACE_S = 10.0  # a take-over mutex older than this was left by a taker that died


class FolderBusy(RuntimeError):
    """Another process writes into the folder (or did, on another host)."""


def command_line() -> str:
    """This process's command as a user typed it: ``python -m iql_tutorial train ...`` (not the
    ``__main__.py`` that ``-m`` leaves in ``sys.argv[0]``)."""
    if not sys.argv:
        return ""
    first = Path(sys.argv[0])
    program = "python -m iql_tutorial" if first.name == "__main__.py" else first.name
    return " ".join([program, *sys.argv[1:]])


def proc_start(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux), which tells a live
    holder from another process that reused its PID; None where /proc does not say."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except (OverflowError, ValueError):
        return False
    return True


def process_tag() -> str:
    """``PID-START`` of this process (START: ``proc_start``, or 0 where /proc does not say)."""
    return f"{os.getpid()}-{proc_start(os.getpid()) or 0}"


def owner_alive(tag: str) -> bool | None:
    """Whether the process of a ``process_tag`` still runs on this host (None: not a tag)."""
    pid, _, start = tag.partition("-")
    if not (pid.isdigit() and start.isdigit()):
        return None
    if not alive(int(pid)):
        return False
    now = proc_start(int(pid))
    return start == "0" or now is None or now == start


def describe_holder(holder: dict[str, Any]) -> str:
    cmd = holder.get("command")
    return (
        f"PID {holder.get('pid')} on host {holder.get('host')} (started {holder.get('started')}"
        + (f": {cmd}" if cmd else "")
        + ")"
    )


class FolderLock:
    """The lock file ``path`` of ``folder`` (what it guards, named ``what`` in messages).

    ``busy(who)`` words the refusal when another process holds it (``who``: the holder)."""

    def __init__(self, folder: str | Path, path: str | Path, what: str | None = None) -> None:
        self.folder = Path(folder)
        self.path = Path(path)
        self.what = what or str(self.folder)
        self.token = uuid.uuid4().hex
        self.held = False

    def busy(self, who: str) -> str:
        return (
            f"{self.what} is in use by {who}: one process writes into it at a time. Wait for it to finish; "
            f"if that process is gone, delete {self.path}."
        )

    def cannot_write(self, path: Path, e: OSError) -> WriteError:
        """The one line for a lock file that cannot be created or written (permissions, disk full)."""
        return WriteError(f"cannot write the lock {path}: {os_cause(e)}")

    def _content(self) -> dict[str, Any]:
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "proc_start": proc_start(os.getpid()),
            "command": command_line()[:300],
            "token": self.token,
        }

    def _read(self, path: Path) -> dict[str, Any] | None:
        """The holder recorded in ``path``; None if it is empty or unreadable. FileNotFoundError
        if it is gone; a one-line ``WriteError`` if it cannot be read (a folder, no permission)."""
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise
        except OSError as e:
            kind = "a folder, not a lock file" if path.is_dir() else os_cause(e)
            raise WriteError(
                f"the lock {path} cannot be read ({kind}); remove it (once no process writes into "
                f"{self.folder}) and try again."
            ) from None
        try:
            holder = json.loads(text)
        except ValueError:
            return None
        return holder if isinstance(holder, dict) else None

    def _stale(self, holder: dict[str, Any] | None) -> str | None:
        """Why ``holder`` no longer holds the lock (None: it does, or this host cannot tell)."""
        if holder is None:
            try:
                age = time.time() - self.path.stat().st_mtime
            except FileNotFoundError:
                return "gone"
            if age < EMPTY_LOCK_GRACE_S:
                return None
            return f"an empty or damaged lock file, {age:.0f} s old"
        if holder.get("host") != socket.gethostname():
            return None
        pid = holder.get("pid")
        if not isinstance(pid, int):
            return "a lock file without a PID"
        if not alive(pid):
            return f"no process {pid} runs on this host"
        start = holder.get("proc_start")
        if start is not None and proc_start(pid) not in (None, start):
            return f"PID {pid} now belongs to another process"
        return None

    def acquire(self) -> str | None:
        """Take the lock; returns a note when a stale lock was taken over. Raises ``FolderBusy``
        (one line, naming the holder) if another process holds it."""
        note = None
        for _ in range(500):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            except FileExistsError:
                pass
            except IsADirectoryError:
                pass  # read below: a one-line error
            except OSError as e:
                raise self.cannot_write(self.path, e) from None
            else:
                try:
                    with os.fdopen(fd, "w") as f:
                        f.write(json.dumps(self._content()))
                        f.flush()
                        os.fsync(f.fileno())
                except OSError as e:
                    self.path.unlink(missing_ok=True)
                    raise self.cannot_write(self.path, e) from None
                self.held = True
                return note
            try:
                holder = self._read(self.path)
            except FileNotFoundError:
                continue  # released meanwhile: try again
            why = self._stale(holder)
            if why == "gone":
                continue
            if why is None:
                who = describe_holder(holder) if holder else "a process that is taking it right now"
                raise FolderBusy(self.busy(who))
            # take the stale lock over. Only the holder of the take-over mutex (a second file created
            # with O_EXCL) may remove a lock, and only after reading it again under the mutex: so a
            # fresh lock taken meanwhile is never removed, and exactly one taker's O_EXCL succeeds
            mutex = self.path.with_name(f"{self.path.name}.takeover")
            try:
                os.close(os.open(mutex, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            except FileExistsError:
                try:
                    if time.time() - mutex.stat().st_mtime > TAKEOVER_GRACE_S:
                        mutex.unlink(missing_ok=True)  # left by a taker that died holding it
                except FileNotFoundError:
                    pass
                time.sleep(0.02)
                continue
            except OSError as e:
                raise self.cannot_write(mutex, e) from None
            try:
                try:
                    again = self._read(self.path)
                except FileNotFoundError:
                    continue
                if again != holder or self._stale(again) is None:
                    continue  # not the stale lock any more: read it again from the top
                self.path.unlink(missing_ok=True)
            finally:
                mutex.unlink(missing_ok=True)
            was = describe_holder(holder) if holder else "nobody"
            note = f"took over the stale lock of {self.what} ({why}; it was held by {was})"
        raise FolderBusy(f"could not take the lock {self.path}: other processes keep taking it; try again.")

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        try:
            holder = self._read(self.path)
        except OSError:
            return
        if holder is not None and holder.get("token") == self.token:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> FolderLock:
        note = self.acquire()
        if note:
            print(f"note: {note}", file=sys.stderr)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
