"""The book's one matplotlib style, used by every figure helper (:mod:`~iql_tutorial.viz.plots`,
:mod:`~iql_tutorial.viz.curves`, :mod:`~iql_tutorial.viz.results`).

Figures are sized for the book's text column (about 7.5 inches at 100 dpi, so a figure is shown
at close to its natural size) with 10 pt text and 9 pt legends and ticks, laid out by matplotlib's
constrained layout (no ``tight_layout`` anywhere). A chapter's set-up cell calls
:func:`book_style` once; the chapter 6 helpers draw inside ``plt.rc_context(book_rc())`` instead,
so that they leave the notebook's settings as they were.
"""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
from matplotlib.typing import RcKeyType

#: width of a full-column figure, inches (at ``figure.dpi`` = 100 it fills the book's column)
WIDTH = 7.5

_BOOK_RC: dict[RcKeyType, Any] = {
    "figure.dpi": 100,
    "figure.figsize": (WIDTH, 3.4),
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "figure.constrained_layout.use": True,
}


def book_rc() -> dict[RcKeyType, Any]:
    """The book's matplotlib settings (a copy): for ``plt.rc_context`` or ``plt.rcParams.update``."""
    return dict(_BOOK_RC)


def book_style() -> None:
    """The book's matplotlib defaults: a column-wide figure, 10 pt text, 9 pt legends and ticks,
    constrained layout."""
    plt.rcParams.update(book_rc())
