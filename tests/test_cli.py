"""The one command line, ``python -m iql_tutorial <command>``: its usage, its refusal of an unknown
command, each command's --help under the new name, and no trace left of the old module paths."""

import ast
import importlib
import json
import re
import subprocess
import sys

import pytest
from helpers import REPO

from iql_tutorial.__main__ import COMMANDS, PROG
from iql_tutorial.__main__ import main as cli

NAMES = ["train", "finetune", "sweep", "bench", "data", "sac", "naive", "watch"]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "iql_tutorial", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=300)  # fmt: skip


def test_no_command_prints_the_usage_with_every_command():
    r = run()
    assert r.returncode == 2
    text = r.stdout + r.stderr
    assert text.startswith("usage: python -m iql_tutorial <command> [args]")
    for name in NAMES:
        assert re.search(rf"^  {name} +\S", text, re.M), f"{name} has no line of its own:\n{text}"
    assert len(text.splitlines()) <= 24  # one screen
    assert list(COMMANDS) == NAMES


def test_help_prints_the_usage_and_succeeds(capsys):
    assert cli(["--help"]) == 0
    assert "commands:" in capsys.readouterr().out


def test_an_unknown_command_is_refused_in_one_line():
    r = run("nope")
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "'nope'" in lines[0] and all(name in lines[0] for name in NAMES)


def test_train_help_runs_as_a_command_and_shows_its_new_name():
    r = run("train", "--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: python -m iql_tutorial train "), r.stdout[:200]
    assert "--dataset" in r.stdout


@pytest.mark.parametrize("name", NAMES)
def test_every_command_help_names_it_as_it_is_typed(name, capsys):
    try:
        code = cli([name, "--help"])  # data prints its own help and returns 0; argparse exits 0
    except SystemExit as e:
        code = e.code
    assert code == 0
    assert f"usage: {PROG} {name} " in capsys.readouterr().out


def test_bench_does_not_import_the_dataset_making_code():
    code = (
        "import contextlib, io, sys\n"
        "from iql_tutorial.__main__ import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['bench', '--help'])\n"
        "print([m for m in sys.modules if m.startswith(('iql_tutorial.datasets', 'iql_tutorial.runs'))])\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


# ------------------------------------------------------------------------------ no old module paths
# the paths the package's modules had before its split into subpackages (the alias shim's table)
OLD_MODULES = {
    **{f"iql_tutorial.{m}": f"iql_tutorial.core.{m}" for m in ("config", "networks", "losses", "agent", "plain")},
    "iql_tutorial.whole_step": "iql_tutorial.core.update",
    "iql_tutorial.fast": "iql_tutorial.core.runner",
    "iql_tutorial.speed.runner": "iql_tutorial.core.runner",
    "iql_tutorial.speed.threads": "iql_tutorial.utils.threads",
    "iql_tutorial.runs.checkpoint": "iql_tutorial.runs.csvlog",
    "iql_tutorial.runs.stats": "iql_tutorial.utils.stats",
    "iql_tutorial.bench": "iql_tutorial.speed.bench",
    **{f"iql_tutorial.{m}": f"iql_tutorial.runs.{m}" for m in ("train", "finetune", "evaluation", "checkpoint")},
    "iql_tutorial.results": "iql_tutorial.runs.sweep",
    "iql_tutorial.sac": "iql_tutorial.datasets.sac",
    **{f"iql_tutorial.data.{m}": f"iql_tutorial.datasets.{m}" for m in ("behaviour", "rollouts", "recipes", "maze")},
    "iql_tutorial.data.minari_io": "iql_tutorial.datasets.minari_io",
    "iql_tutorial.data.__main__": "iql_tutorial.datasets.cli",
}


@pytest.mark.parametrize("old", sorted(OLD_MODULES))
def test_old_module_paths_are_gone(old):
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(old)


def test_the_alias_shim_is_gone():
    assert not (REPO / "iql_tutorial" / "_moved.py").exists()
    assert not (REPO / "iql_tutorial" / "data" / "__main__.py").exists()


OLD = r"iql_tutorial\.(?:train|results|bench|finetune|sac|data)\b"
OLD_COMMAND = re.compile(
    rf"-m {OLD}"  # an old module run as a script
    rf"|python -m iql_tutorial\.\w"  # any module path typed as a command, old or new
    rf"|[\"']-m[\"'],\s*[\"']{OLD}"  # the same in a subprocess's argument list
)
# recorded outputs: a committed result keeps the command that made it
RECORDED = re.compile(r"data/results/[^/]+\.(json|csv|txt)$")
BINARY = (".hdf5", ".pt", ".npz", ".npy", ".png", ".jpg", ".pdf", ".h5")


def tracked_text_files():
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    for name in out.split("\0"):
        path = REPO / name
        if not name or RECORDED.match(name) or name.endswith(BINARY) or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        if name.endswith(".ipynb"):  # the cells as written, not their outputs
            text = "\n".join("".join(c["source"]) for c in json.loads(text)["cells"])
        yield name, text


def test_no_file_runs_an_old_module_path():
    found = [
        f"{name}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}"
        for name, text in tracked_text_files()
        for m in OLD_COMMAND.finditer(text)
    ]
    assert not found, "old command lines (use python -m iql_tutorial <command>):\n" + "\n".join(found)


def old_imports(source: str) -> list[str]:
    """The imports in ``source`` that reach an old module path, as ``line N: module``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found += [f"line {node.lineno}: {n} (now {OLD_MODULES[n]})" for n in names if n in OLD_MODULES]
    return found


def test_no_code_imports_an_old_module_path():
    found = []
    for name, text in tracked_text_files():
        if name.endswith(".py"):
            sources = [text]
        elif name.endswith(".ipynb"):  # code cells, less their shell and magic lines
            sources = ["\n".join(x for x in "".join(c["source"]).splitlines() if not x.lstrip().startswith(("%", "!")))
                       for c in json.loads((REPO / name).read_text())["cells"] if c["cell_type"] == "code"]  # fmt: skip
        else:
            continue
        found += [f"{name} {f}" for src in sources for f in old_imports(src)]
    assert not found, "imports of old module paths:\n" + "\n".join(found)


def test_the_old_import_check_finds_each_form():
    code = (
        "from iql_tutorial import sac, IQLAgent\nfrom iql_tutorial.data import minari_io\nimport iql_tutorial.train\n"
    )
    assert [f.split(":")[0] for f in old_imports(code)] == ["line 1", "line 2", "line 3"]
    assert old_imports("from iql_tutorial.data import load_dataset\nfrom iql_tutorial.runs import train\n") == []


def test_the_old_command_pattern_finds_each_form():
    bad = [
        "python -m iql_tutorial" + ".train --dataset X",
        "$(PY) -m iql_tutorial" + ".results $(ARGS)",
        'cmd = [sys.executable, "-m", "iql_tutorial' + '.data", "import"]',
        "python -m iql_tutorial" + ".runs.train --dataset X",
    ]
    good = [
        "python -m iql_tutorial train --dataset X",
        'cmd = [sys.executable, "-m", "iql_tutorial", "data", "import"]',
        "from iql_tutorial.data.loader import load_dataset",
        '[sys.executable, "-m", "iql_tutorial.speed.bench", "--worker"]',  # the benchmark's own worker
    ]
    assert all(OLD_COMMAND.search(s) for s in bad)
    assert not any(OLD_COMMAND.search(s) for s in good)
