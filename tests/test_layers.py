"""The package's layers, enforced: the import-linter contracts of pyproject.toml ([tool.importlinter]:
layers with no upward import, no cycle between subpackages or between the modules of a package, no
module importing the package's __init__) and, in this file, no private name used across modules."""

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "iql_tutorial"


def test_the_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")  # installed with import-linter (requirements.txt)
    r = subprocess.run([str(lint), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300)
    report = r.stdout[r.stdout.find("Contracts\n") :] if "Contracts\n" in r.stdout else r.stdout
    assert r.returncode == 0, f"lint-imports failed (rc {r.returncode}):\n{report}{r.stderr}"


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def private_uses(source: str, module: str, is_package: bool = False) -> list[str]:
    """Where ``source`` (the code of ``module``) reaches a private name of another module, sorted
    by line: ``from M import _x`` (M not this module's own package), a private attribute of a
    package module it imported (``threads._APPLIED``), or a private attribute set on another
    object (``step._compiled = ...``). Private *modules* are the ``private_modules`` contract's."""
    package = module if is_package else module.rpartition(".")[0]
    found: list[str] = []
    own_modules: dict[str, str] = {}  # local name -> package module it is bound to
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*up, base] if base else up)
            if not base.startswith("iql_tutorial"):
                continue
            for a in node.names:
                target = f"{base}.{a.name}"
                if _private(a.name) and not package.startswith(base):
                    found.append(f"line {node.lineno}: from {base} import {a.name}")
                own_modules[a.asname or a.name] = target
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("iql_tutorial") and a.asname:
                    own_modules[a.asname] = a.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr) and isinstance(node.value, ast.Name):
            if node.value.id in own_modules:
                found.append(
                    f"line {node.lineno}: {node.value.id}.{node.attr} (private to {own_modules[node.value.id]})"
                )
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                for sub in ast.walk(t):
                    if (
                        isinstance(sub, ast.Attribute)
                        and _private(sub.attr)
                        and not (isinstance(sub.value, ast.Name) and sub.value.id in ("self", "cls"))
                    ):
                        found.append(f"line {node.lineno}: sets {ast.unparse(sub)} (private to another object)")
    return sorted(found, key=lambda f: int(f.split()[1].rstrip(":")))


def test_the_private_name_check_finds_each_kind():
    code = """
from iql_tutorial.data.loader import _flatten_obs
from iql_tutorial.utils import threads
from iql_tutorial._version import __version__
from .loader import _helper
x = threads._APPLIED
step._compiled = 1
self._ok = 2
from iql_tutorial.data.loader import flatten_obs
"""
    found = private_uses(code, "iql_tutorial.runs.evaluation")
    assert [f.split(":")[0] for f in found] == ["line 2", "line 5", "line 6", "line 7"], found
    assert private_uses("from iql_tutorial import _version\n", "iql_tutorial", is_package=True) == []


def test_no_private_name_is_used_across_modules():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        found += [
            f"{path.relative_to(REPO)} {f}"
            for f in private_uses(path.read_text(), _module_name(path), path.name == "__init__.py")
        ]
    assert not found, "private names used outside their module (make them public where they belong):\n" + "\n".join(
        found
    )


def test_an_upward_import_breaks_the_contract(tmp_path):
    """The contract test can fail: a copy of the package where core imports speed (an upward
    import, and a cycle through the benchmark) is reported broken by the same lint-imports run."""
    shutil.copytree(PACKAGE, tmp_path / "iql_tutorial", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    losses = tmp_path / "iql_tutorial" / "core" / "losses.py"
    losses.write_text(losses.read_text() + "\nfrom iql_tutorial.speed import bench  # noqa: E402,F401\n")
    lint = Path(sys.executable).with_name("lint-imports")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    r = subprocess.run([str(lint), "--no-cache"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "iql_tutorial.core.losses -> iql_tutorial.speed.bench" in r.stdout, r.stdout
