"""Quick mode: the small budgets of ``IQL_QUICK=1`` (tests, CI); the full budgets by default."""

from __future__ import annotations

import os

QUICK_ENV_VAR = "IQL_QUICK"


QUICK_ON = ("1", "true", "yes", "on")
QUICK_OFF = ("", "0", "false", "no", "off")


def quick_mode() -> bool:
    """True when ``IQL_QUICK`` is 1, true, yes or on (any case): every notebook and script then
    shrinks its budgets (CI sets it; the defaults are the real budgets). Unset, empty, 0, false,
    no or off: the full budgets. Anything else is a one-line ``ValueError``, not a guess."""
    value = os.environ.get(QUICK_ENV_VAR, "").strip().lower()
    if value in QUICK_ON:
        return True
    if value in QUICK_OFF:
        return False
    raise ValueError(
        f"{QUICK_ENV_VAR}={os.environ[QUICK_ENV_VAR]!r} is not understood: set it to 1 (small budgets: tests, CI) "
        "or 0 (the full budgets), or unset it."
    )


def budget(full: int, quick: int) -> int:
    """``full`` normally, ``quick`` in quick mode."""
    return quick if quick_mode() else full
