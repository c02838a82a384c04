"""Quick mode: the small budgets of ``IQL_QUICK=1`` (tests, CI); the full budgets by default."""

from __future__ import annotations

import os

QUICK_ENV_VAR = "IQL_QUICK"


def quick_mode() -> bool:
    """True when ``IQL_QUICK`` is set to a non-empty value other than ``0``: every notebook and
    script then shrinks its budgets (CI sets it; the defaults are the real budgets)."""
    return os.environ.get(QUICK_ENV_VAR, "") not in ("", "0")


def budget(full: int, quick: int) -> int:
    """``full`` normally, ``quick`` in quick mode."""
    return quick if quick_mode() else full
