"""tools/execute_book.py: the notebooks it executes are in the cache the way jupyter-book's cache mode
looks them up (so the build only renders them), an unchanged notebook is not run again, and a
notebook that raises fails the run with its traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
from jupyter_cache import get_cache

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "execute_book.py"


def notebook(path: Path, *sources: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, path)
    return path


def execute(cache: Path, *paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(TOOL), "--cache", str(cache), "--jobs", "2", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_executed_notebooks_are_found_as_jupyter_book_looks_them_up(tmp_path):
    # each kernel runs in its notebook's folder, as jupyter-book's run_in_temp: false
    (tmp_path / "data.txt").write_text("41")
    first = notebook(tmp_path / "first.ipynb", "x = int(open('data.txt').read()) + 1", "print(x)")
    second = notebook(tmp_path / "second.ipynb", "import os\nprint(os.environ['IQL_TEST_MARK'])")
    cache = tmp_path / "cache"
    done = subprocess.run(
        [sys.executable, str(TOOL), "--cache", str(cache), str(first), str(second)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "IQL_TEST_MARK": "from the build's environment"},
    )
    assert done.returncode == 0, done.stderr
    assert "executing 2 notebooks" in done.stdout
    jc = get_cache(str(cache))
    # the lookup of myst_nb's cache mode: the notebook as read from its file
    outputs = {}
    for path in (first, second):
        record = jc.match_cache_notebook(nbformat.read(path, as_version=4))
        _, merged = jc.merge_match_into_notebook(nbformat.read(path, as_version=4))
        assert record.data["execution_seconds"] > 0
        outputs[path.name] = "".join(o.get("text", "") for c in merged.cells for o in c.outputs)
    assert outputs == {"first.ipynb": "42\n", "second.ipynb": "from the build's environment\n"}
    # nothing changed: nothing runs again
    again = execute(cache, first, second)
    assert again.returncode == 0 and "2 of 2 notebooks are in the cache already" in again.stdout


def test_a_notebook_that_raises_fails_the_run_with_its_traceback(tmp_path):
    good = notebook(tmp_path / "good.ipynb", "print('fine')")
    bad = notebook(tmp_path / "bad.ipynb", "raise ValueError('the chapter broke here')")
    done = execute(tmp_path / "cache", good, bad)
    assert done.returncode == 1
    assert "FAILED bad.ipynb" in done.stdout and "done good.ipynb" in done.stdout
    assert "ValueError: the chapter broke here" in done.stderr
    # the good one is cached all the same
    get_cache(str(tmp_path / "cache")).match_cache_notebook(nbformat.read(good, as_version=4))


def test_a_missing_notebook_is_refused_in_one_line(tmp_path):
    done = execute(tmp_path / "cache", tmp_path / "nowhere.ipynb")
    assert done.returncode == 2
    assert "no such notebook" in done.stderr.strip().splitlines()[-1]
