"""Command lines generated from the config dataclasses: the dataclasses are the only source of
truth for names, types, defaults and help texts (taken from the ``Attributes:`` docstrings).

Every field becomes ``--field-name``; a flag the user does not pass leaves the field as the
base config has it, so defaults are never written twice.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import types
import typing
from typing import Any


def field_docs(cls: type) -> dict[str, str]:
    """``name: text`` entries of the ``Attributes:`` section of ``cls``'s docstring (an entry may
    name several fields, ``a, b: text``, and continue on more-indented lines)."""
    doc = cls.__doc__ or ""
    if "Attributes:" not in doc:
        return {}
    docs: dict[str, str] = {}
    current: list[str] = []
    for line in doc.split("Attributes:", 1)[1].splitlines():
        m = re.match(r"^\s{4,8}([a-z_][a-z0-9_, ]*):\s*(.*)$", line)
        if m and not line.startswith(" " * 12):
            current = [n.strip() for n in m.group(1).split(",")]
            for n in current:
                docs[n] = m.group(2).strip()
        elif line.strip() and current:
            for n in current:
                docs[n] += " " + line.strip()
    return {k: v.replace("``", "").replace("%", "%%") for k, v in docs.items()}


def _base_type(tp: Any) -> tuple[Any, bool]:
    """(the non-None type, whether None is allowed)."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0], True
    return tp, False


def add_fields(
    parser: argparse.ArgumentParser | Any,
    cls: type,
    skip: tuple[str, ...] = (),
    choices: dict[str, tuple[str, ...]] | None = None,
    required: tuple[str, ...] = (),
) -> None:
    """One flag per field of ``cls`` (except ``skip``), default ``SUPPRESS`` (see ``given``)."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    choices = choices or {}
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        tp, _ = _base_type(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else None
        shown = "" if f.name in required else f" (default: {default})"
        kw: dict[str, Any] = {"help": (docs.get(f.name, "") + shown).strip(), "dest": f.name}
        if f.name in required:
            kw["required"] = True
        else:
            kw["default"] = argparse.SUPPRESS
        origin = typing.get_origin(tp)
        if tp is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif origin in (tuple, list):
            kw.update(nargs="+", type=typing.get_args(tp)[0])
        elif tp in (int, float, str):
            kw["type"] = tp
        else:
            raise TypeError(f"{cls.__name__}.{f.name}: no command-line form for {tp!r}")
        if f.name in choices:
            kw["choices"] = choices[f.name]
        parser.add_argument("--" + f.name.replace("_", "-"), **kw)


def given(ns: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The fields of ``cls`` that the user passed on the command line."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in vars(ns).items() if k in names}
