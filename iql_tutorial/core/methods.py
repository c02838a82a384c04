"""The methods the book compares: one identifier each, one label each, mapped here only.

The identifier is what code, the command line, CSV files and run folders say: ``awr`` (IQL's
advantage-weighted regression, ``IQLConfig.policy="awr"``), ``bc`` (behaviour cloning) and
``naive`` (the naive offline baseline: SAC trained on the fixed dataset, ``runs.naive``). The label is
what figures, tables and pages show (``IQL``, ``BC``, ``naive``). A new method adds one entry to
``LABELS``.

Results written before this spelling was settled still read: their CSVs name the methods by
label (a ``policy`` column of ``IQL``/``BC``) and their run folders by ``-iql-`` (``OLD_NAMES``);
``identifier`` and ``with_labels`` map either spelling.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

#: identifier -> the label figures and pages show
LABELS = {"awr": "IQL", "bc": "BC", "naive": "naive"}
#: older spellings of an identifier: the labels older CSVs hold, the word older run folders hold
OLD_NAMES = {"IQL": "awr", "iql": "awr", "BC": "bc"}


def label(method: str) -> str:
    """How figures and pages name ``method`` (an identifier, or an older spelling of one)."""
    return LABELS.get(identifier(method), method)


def identifier(name: str) -> str:
    """The identifier of ``name``: an identifier itself, or an older spelling of one."""
    return name if name in LABELS else OLD_NAMES.get(name, name)


def with_labels(frame: pd.DataFrame, column: str = "policy") -> pd.DataFrame:
    """``frame`` with its ``column`` of methods (identifiers, or the labels of older results) as
    labels, for a figure or a table; the frame given is not changed."""
    if column not in frame.columns:
        return frame
    return frame.assign(**{column: frame[column].map(lambda m: label(str(m)))})


def with_identifiers(frame: pd.DataFrame, column: str = "policy") -> pd.DataFrame:
    """``frame`` with its ``column`` of methods as identifiers (the labels of older results mapped)."""
    if column not in frame.columns:
        return frame
    return frame.assign(**{column: frame[column].map(lambda m: identifier(str(m)))})
