"""Old module paths, kept working: each maps to where the module lives now.

``from iql_tutorial.agent import IQLAgent`` and ``python -m iql_tutorial.train`` keep working after
the package was split into subpackages. An old name is an alias of the new module (the same
module object, so classes and ``isinstance`` checks agree), not a second copy.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from types import CodeType, ModuleType

MOVED = {
    "iql_tutorial.config": "iql_tutorial.core.config",
    "iql_tutorial.networks": "iql_tutorial.core.networks",
    "iql_tutorial.losses": "iql_tutorial.core.losses",
    "iql_tutorial.agent": "iql_tutorial.core.agent",
    "iql_tutorial.plain": "iql_tutorial.core.plain",
    "iql_tutorial.whole_step": "iql_tutorial.core.step",
    "iql_tutorial.fast": "iql_tutorial.speed.runner",
    "iql_tutorial.bench": "iql_tutorial.speed.bench",
    "iql_tutorial.train": "iql_tutorial.runs.train",
    "iql_tutorial.finetune": "iql_tutorial.runs.finetune",
    "iql_tutorial.results": "iql_tutorial.runs.sweep",
    "iql_tutorial.evaluation": "iql_tutorial.runs.evaluation",
    "iql_tutorial.checkpoint": "iql_tutorial.runs.checkpoint",
    "iql_tutorial.sac": "iql_tutorial.datasets.sac",
    "iql_tutorial.data.behaviour": "iql_tutorial.datasets.behaviour",
    "iql_tutorial.data.rollouts": "iql_tutorial.datasets.rollouts",
    "iql_tutorial.data.recipes": "iql_tutorial.datasets.recipes",
    "iql_tutorial.data.maze": "iql_tutorial.datasets.maze",
    "iql_tutorial.data.minari_io": "iql_tutorial.datasets.minari_io",
    # python -m iql_tutorial.data: its command line spans data and datasets, so it lives in the upper layer
    "iql_tutorial.data.__main__": "iql_tutorial.datasets.cli",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name: str, path: object = None, target: object = None) -> importlib.machinery.ModuleSpec | None:
        if name not in MOVED:
            return None
        new = importlib.util.find_spec(MOVED[name])  # its file, so ``python -m OLD`` has a __file__
        return importlib.machinery.ModuleSpec(name, self, origin=new.origin if new else None)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module: ModuleType) -> None:
        """The new module is already executed."""

    def get_code(self, name: str) -> CodeType | None:
        """For ``python -m OLD``: runpy runs the new module's code as ``__main__``."""
        spec = importlib.util.find_spec(MOVED[name])
        assert spec is not None and spec.loader is not None
        return spec.loader.get_code(MOVED[name])  # type: ignore[attr-defined]


def install() -> None:
    if not any(isinstance(f, _Alias) for f in sys.meta_path):
        sys.meta_path.append(_Alias())
