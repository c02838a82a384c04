"""The training loops' progress bars: live for a person watching, one final line in the rendered
book (``IQL_PROGRESS=final``)."""

from __future__ import annotations

import os
import sys

from tqdm.auto import tqdm


def progress_interval() -> float:
    """Seconds between progress-bar refreshes. Twice a second where someone watches the bar live:
    a terminal, or a Jupyter kernel (a widget, or a text line the front end redraws in place).
    Every 5 s when the output is captured to a file or pipe (a log keeps every refresh). Never
    with ``IQL_PROGRESS=final`` (the rendered book: see ``progress_bar``)."""
    if os.environ.get("IQL_PROGRESS", "") == "final":
        return float("inf")
    return 0.5 if sys.stderr.isatty() or "ipykernel" in sys.modules else 5.0


def live_status() -> bool:
    """False with ``IQL_PROGRESS=final`` (the rendered book): status lines that only matter while a
    run is going (the thread plan, "compiling ...") are then left out, as the bars' refreshes are;
    the run folder's ``threads.txt`` keeps the thread plan either way."""
    return os.environ.get("IQL_PROGRESS", "") != "final"


def final_line_format(desc: str, unit: str, total: float | None) -> str:
    """tqdm's ``bar_format`` for a bar's one line in the rendered book: "DESC: N/TOTAL UNITs, POSTFIX"
    (no unit for tqdm's default "it"), with no elapsed time, rate or ETA."""
    count = "{n:,}" if total is None else "{n:,}/{total:,}"
    count += "" if unit == "it" else " {unit}s"
    return ("{desc}: " if desc else "") + count + "{postfix}"


def progress_bar(total: int, initial: int, desc: str, unit: str, enabled: bool = True) -> tqdm:
    """The training loops' tqdm bar.

    Live by default: ``tqdm.auto`` (an ipywidgets bar in JupyterLab, a text bar elsewhere),
    refreshed every ``progress_interval()`` seconds. With ``IQL_PROGRESS=final``, which ``make
    book`` and the book tests set so that the executed notebooks rendered into the book hold
    text and no widgets, a text bar on stderr that prints nothing while it runs and one line,
    its final state, when it is closed: the description, the count and the postfix
    (``final_line_format``: "awr hopper: 10,000/10,000 steps, score=52.1"), no elapsed time, rate
    or ETA, which differ on every build and machine (``tools/book_kernel_startup.py`` does the same
    to the notebooks' own ``tqdm.auto`` bars; ``tools/check_book.py`` fails a page showing a timing).
    """
    kwargs = dict(total=total, initial=initial, desc=desc, disable=not enabled, unit=unit)
    if os.environ.get("IQL_PROGRESS", "") != "final":
        return tqdm(**kwargs, mininterval=progress_interval())
    from tqdm.std import tqdm as text_tqdm

    class FinalLine(text_tqdm):
        closing = False

        def display(self, *args, **kwargs):  # refresh() and set_postfix() draw through here
            return super().display(*args, **kwargs) if self.closing else None

        def close(self):
            if not getattr(self, "disable", True):
                self.closing, self.delay = True, 0.0  # tqdm's close() then draws the final state
                self.bar_format = final_line_format(self.desc, self.unit, self.total)
            super().close()

    return FinalLine(**kwargs, delay=float("inf"))
