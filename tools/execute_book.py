"""Execute the book's notebooks into jupyter-book's cache, several at a time.

``make book`` used to leave every notebook to jupyter-book, which executes one after another: on a
2-core machine one core sat idle for the whole build, since a chapter runs on one thread most of
the time. This script runs the notebooks that the cache does not hold yet (an unchanged notebook is
not run again), one per core, the longest first (by its last recorded run), each in its own
folder as jupyter-book does (``execute.run_in_temp: false``), and stores each result in the cache
exactly as jupyter-book's cache mode would. jupyter-book then finds every notebook in the cache
and only renders.

    python tools/execute_book.py [--cache _build/.jupyter_cache] [--jobs N] book/*.ipynb

A notebook that raises stops the build: its traceback is printed and the exit status is 1 (the
other notebooks finish and are cached first). Environment variables (``IQL_QUICK``,
``IQL_PROGRESS``, ``PYTHONSTARTUP``) reach the kernels as they do under jupyter-book.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import sys
import time
from pathlib import Path

from jupyter_cache import get_cache
from jupyter_cache.cache.db import NbProjectRecord
from jupyter_cache.executors.basic import ExecutionWorkerLocalMProc, ProcessData


def last_runtimes(cache) -> dict[str, float]:
    """The longest recorded execution time of each notebook path, over the cache's records."""
    seconds: dict[str, float] = {}
    for record in cache.list_cache_records():
        took = (record.data or {}).get("execution_seconds")
        if took is not None:
            seconds[record.uri] = max(seconds.get(record.uri, 0.0), float(took))
    return seconds


def run(data: ProcessData) -> tuple[int, str, float]:
    """One notebook, in a worker process: (status, path, seconds); status 0 is success."""
    start = time.perf_counter()
    status, uri = ExecutionWorkerLocalMProc()(data)
    return status, uri, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--cache", type=Path, default=Path("_build/.jupyter_cache"))
    parser.add_argument("--jobs", type=int, default=None, help="notebooks at once (default: the CPU count)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell, as _config.yml's")
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.notebooks if not p.is_file()]
    if missing:
        parser.error(f"no such notebook: {', '.join(missing)}")
    args.cache.parent.mkdir(parents=True, exist_ok=True)
    cache = get_cache(str(args.cache))
    paths = [str(p.resolve()) for p in args.notebooks]
    for path in paths:
        cache.add_nb_to_project(path)
    todo = cache.list_unexecuted(filter_uris=paths)
    print(f"{len(paths) - len(todo)} of {len(paths)} notebooks are in the cache already", flush=True)
    if not todo:
        return 0
    took = last_runtimes(cache)
    todo.sort(key=lambda record: -took.get(record.uri, 0.0))
    NbProjectRecord.remove_tracebacks([r.pk for r in todo], cache.db)
    jobs = max(1, min(args.jobs or os.cpu_count() or 1, len(todo)))
    print(f"executing {len(todo)} notebooks, {jobs} at a time", flush=True)
    work = [ProcessData(r.pk, r.uri, cache, args.timeout, False) for r in todo]
    failed = []
    start = time.perf_counter()
    with multiprocessing.Pool(jobs) as pool:
        for status, uri, seconds in pool.imap_unordered(run, work, chunksize=1):
            name = Path(uri).name
            print(f"{'done' if status == 0 else 'FAILED'} {name} in {seconds:.0f} s", flush=True)
            if status != 0:
                failed.append(uri)
    print(f"executed in {time.perf_counter() - start:.0f} s", flush=True)
    for uri in failed:
        traceback = cache.get_project_record(uri).traceback or "(no traceback recorded)"
        # the kernel's traceback without its terminal colours
        traceback = re.sub(r"\x1b\[[0-9;]*m", "", traceback)
        print(f"\n{uri} raised:\n{traceback}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
