"""One writer per run folder: real processes write into one folder at once (the second is refused,
the first finishes with its logs intact), a second --resume while the first runs is refused, and
a lock left by a process killed with SIGKILL is taken over; the lock itself, unit by unit."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from helpers import run_train, start_paused

from iql_tutorial.runs.folder import LOCK_NAME, RunFolder, RunFolderBusy, RunLock, differences


def steps_of(path: Path) -> list[int]:
    return list(pd.read_csv(path)["step"])


@pytest.mark.parametrize("second", [["--seed", "1"], ["--resume"]], ids=["new-run-seed1", "resume"])
def test_a_second_writer_is_refused_and_the_first_finishes_intact(tiny_datasets_path, tmp_path, second):
    out = tmp_path / "run"
    first, _, go = start_paused(tmp_path, tiny_datasets_path, out, 30)
    try:
        other = run_train(tiny_datasets_path, out, *second)
    finally:
        go.touch()
        stdout, stderr = first.communicate(timeout=300)
    assert other.returncode == 2, other.stderr
    error = [line for line in other.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "Traceback" not in other.stderr, other.stderr
    assert f"PID {first.pid} on host {socket.gethostname()}" in error[0] and "in use by" in error[0]
    assert first.returncode == 0, stderr
    assert "done:" in stdout
    # the first writer's logs, once each, in order; its settings, its checkpoint
    assert steps_of(out / "train_log.csv") == [10, 20, 30, 40, 50, 60]
    assert steps_of(out / "eval_log.csv") == [20, 40, 60]
    assert json.loads((out / "run.json").read_text())["seed"] == 0
    assert not (out / LOCK_NAME).exists()  # released at the end


def test_a_lock_left_by_a_killed_process_is_taken_over(tiny_datasets_path, tmp_path):
    out = tmp_path / "run"
    first, _, _ = start_paused(tmp_path, tiny_datasets_path, out, 30)  # checkpoint at 20, row 30 written
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    holder = json.loads((out / LOCK_NAME).read_text())
    assert holder["pid"] == first.pid and holder["host"] == socket.gethostname()
    again = run_train(tiny_datasets_path, out, "--resume")
    assert again.returncode == 0, again.stderr
    assert f"took over the stale lock of {out} (no process {first.pid} runs on this host" in again.stderr
    assert f"resuming {out} from step 20" in again.stderr
    assert steps_of(out / "train_log.csv") == [10, 20, 30, 40, 50, 60]  # row 30 once, not twice
    assert steps_of(out / "eval_log.csv") == [20, 40, 60]
    assert not (out / LOCK_NAME).exists()


# ------------------------------------------------------------------------------------ the lock itself
def write_lock(folder: Path, **holder) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / LOCK_NAME).write_text(json.dumps(holder))


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid  # reaped: no process has it (until the PID wraps around)


def test_lock_is_exclusive_and_released(tmp_path):
    a, b = RunLock(tmp_path), RunLock(tmp_path)
    assert a.acquire() is None
    holder = json.loads((tmp_path / LOCK_NAME).read_text())
    assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname() and holder["started"]
    with pytest.raises(RunFolderBusy, match=f"PID {os.getpid()} on host"):
        b.acquire()
    a.release()
    assert not (tmp_path / LOCK_NAME).exists()
    assert b.acquire() is None
    a.release()  # not its lock any more: leaves b's alone
    assert (tmp_path / LOCK_NAME).exists()
    b.release()


def test_a_lock_from_another_host_is_refused_even_with_a_dead_pid(tmp_path):
    write_lock(tmp_path, host="node-7.cluster", pid=dead_pid(), started="2026-01-01 00:00:00 UTC")
    with pytest.raises(RunFolderBusy) as e:
        RunLock(tmp_path).acquire()
    msg = str(e.value)
    assert "on host node-7.cluster" in msg and f"delete {tmp_path / LOCK_NAME}" in msg and "\n" not in msg


def test_a_stale_lock_on_this_host_is_taken_over_with_a_note(tmp_path):
    pid = dead_pid()
    write_lock(tmp_path, host=socket.gethostname(), pid=pid, started="2026-01-01 00:00:00 UTC")
    lock = RunLock(tmp_path)
    note = lock.acquire()
    assert note is not None and f"no process {pid} runs on this host" in note
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK_NAME]  # nothing set aside is left over
    lock.release()


def test_a_reused_pid_does_not_keep_a_stale_lock(tmp_path):
    """The PID is alive (this process) but its start time differs from the holder's."""
    write_lock(tmp_path, host=socket.gethostname(), pid=os.getpid(), proc_start="1", started="earlier")
    note = RunLock(tmp_path).acquire()
    assert note is not None and "now belongs to another process" in note


def test_an_empty_lock_is_being_written_unless_old(tmp_path):
    (tmp_path / LOCK_NAME).write_text("")
    with pytest.raises(RunFolderBusy, match="taking it right now"):
        RunLock(tmp_path).acquire()
    old = time.time() - 120
    os.utime(tmp_path / LOCK_NAME, (old, old))
    note = RunLock(tmp_path).acquire()
    assert note is not None and "empty or damaged lock file" in note


def test_only_one_of_many_takers_of_a_stale_lock_wins(tmp_path):
    write_lock(tmp_path, host=socket.gethostname(), pid=dead_pid(), started="earlier")
    results: list[str] = []
    start = threading.Barrier(8)

    def take() -> None:
        start.wait()
        try:
            RunLock(tmp_path).acquire()
            results.append("won")
        except RunFolderBusy:
            results.append("refused")

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("won") == 1, results


def test_a_failed_start_leaves_no_folder_and_no_lock(tmp_path):
    out = tmp_path / "new" / "run"
    with pytest.raises(ValueError), RunFolder.open(out):
        raise ValueError("the dataset did not load")
    assert not out.exists()
    kept = tmp_path / "kept"
    with RunFolder.open(kept) as folder:
        folder.start({"dataset": "d"}, [])
    assert (kept / "run.json").exists() and not (kept / LOCK_NAME).exists()


def test_differences_name_the_nested_field():
    old = {"steps": 50, "iql": {"expectile": 0.7, "hidden_dims": [256, 256]}, "seed": 0}
    new = {"steps": 50, "iql": {"expectile": 0.9, "hidden_dims": (256, 256)}, "seed": 0, "x": 1}
    assert differences(old, new) == ["iql.expectile: 0.7 in run.json, 0.9 now", "x: absent in run.json, 1 now"]
