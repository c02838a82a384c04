"""Kernel start-up file for notebooks executed into the rendered book: progress bars as one text line.

``make book`` and the book tests run ``jupyter-book build`` with ``IQL_PROGRESS=final`` and
``PYTHONSTARTUP`` pointing at this file; IPython kernels run the ``PYTHONSTARTUP`` file before the
first cell (``InteractiveShellApp.exec_PYTHONSTARTUP``, on by default), so every notebook the book
executes starts with tqdm's bars replaced:

- ``tqdm.auto``, ``tqdm.autonotebook`` and ``tqdm.notebook`` give text bars, never ipywidgets
  (a widget has no state in a static page: it would render as an empty box);
- a bar prints nothing while it runs and one line, its final state, when it is closed (a bar left
  on the screen, ``leave=True``); a bar with ``leave=False`` prints nothing at all;
- that line is the description, the count and the postfix ("value net: 3,000/3,000"), with no
  elapsed time, rate or ETA: they differ on every build and machine, and ``tools/check_book.py``
  fails a page that shows one (``[00:12<``, ``it/s``, ``s/it``).

Rendered book pages receive every refresh of a running bar as a new line (each refresh is its own
stream message, and myst-nb joins messages with newlines), hence one line. The package's own bars
(``iql_tutorial.utils.progress_bar``) read ``IQL_PROGRESS`` themselves and behave the same way.
Without ``IQL_PROGRESS=final`` (JupyterLab, nbmake, a plain ``python`` REPL) the progress bars
are left alone: interactive bars stay live.

Whenever it runs, it also records, in every PNG Matplotlib saves (the inline backend saves each
figure the book shows), the smallest font size of the text drawn into that figure, as the PNG's
tEXt chunk ``IQL min font pt`` (``none`` for a figure without text). ``tools/check_book.py``
reads it with the PNG's dpi and the scale the browser shows the image at, and fails a figure
whose smallest text is under 8 pt on the page. Nothing else about a figure changes.
"""


def _iql_final_line_progress_bars() -> None:
    import os

    if os.environ.get("IQL_PROGRESS", "") != "final":
        return
    import warnings

    import tqdm
    import tqdm.asyncio

    class FinalLineTqdm(tqdm.asyncio.tqdm_asyncio):
        """A text tqdm bar that shows nothing while it runs and its final state once, on close."""

        _iql_closing = False

        def __init__(self, *args, **kwargs):
            kwargs["delay"] = float("inf")  # never drawn while running (no first 0% line either)
            super().__init__(*args, **kwargs)

        def display(self, *args, **kwargs):
            # explicit refresh(), set_postfix() and set_description() draw through here too
            return super().display(*args, **kwargs) if self._iql_closing else None

        def close(self):
            if not getattr(self, "disable", True):
                leave = abs(self.pos) == 0 if self.leave is None else self.leave
                if leave:  # let tqdm's close() draw the final state, once, then a newline
                    self._iql_closing = True
                    self.delay = 0.0
                    # as iql_tutorial.utils.progress.final_line_format (this file imports no package)
                    count = "{n:,}" if self.total is None else "{n:,}/{total:,}"
                    count += "" if self.unit == "it" else " {unit}s"
                    self.bar_format = ("{desc}: " if self.desc else "") + count + "{postfix}"
            super().close()

    def trange(*args, **kwargs):
        return FinalLineTqdm(range(*args), **kwargs)

    modules = [tqdm]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tqdm.autonotebook's "IProgress not found" / experimental
        import tqdm.auto
        import tqdm.autonotebook

        modules += [tqdm.auto, tqdm.autonotebook]
        try:
            import tqdm.notebook
        except ImportError:
            pass
        else:
            modules.append(tqdm.notebook)
    for module in modules:
        module.tqdm = FinalLineTqdm
        module.trange = trange
        if hasattr(module, "tqdm_notebook"):
            module.tqdm_notebook = FinalLineTqdm
            module.tnrange = trange


def _iql_record_figure_font_sizes() -> None:
    try:
        import matplotlib.backend_bases
        import matplotlib.text
    except ImportError:
        return
    key = "IQL min font pt"
    sizes: list[float] = []
    recording = [False]
    draw = matplotlib.text.Text.draw

    def recorded_draw(self, renderer):
        # Text.draw draws nothing for an invisible or empty text; neither is text on the page
        if recording[0] and self.get_visible() and self.get_text().strip():
            sizes.append(float(self.get_fontsize()))
        return draw(self, renderer)

    print_figure = matplotlib.backend_bases.FigureCanvasBase.print_figure

    def recorded_print_figure(self, filename, *args, **kwargs):
        fmt = kwargs.get("format") or (filename.rsplit(".", 1)[-1] if isinstance(filename, str) else None)
        if str(fmt).lower() != "png":
            return print_figure(self, filename, *args, **kwargs)
        sizes.clear()
        recording[0] = True
        try:
            self.figure.draw_without_rendering()  # which text is drawn, at which size
        finally:
            recording[0] = False
        metadata = dict(kwargs.get("metadata") or {})
        metadata[key] = f"{min(sizes):g}" if sizes else "none"
        kwargs["metadata"] = metadata
        return print_figure(self, filename, *args, **kwargs)

    matplotlib.text.Text.draw = recorded_draw
    matplotlib.backend_bases.FigureCanvasBase.print_figure = recorded_print_figure


_iql_final_line_progress_bars()
_iql_record_figure_font_sizes()
del _iql_final_line_progress_bars, _iql_record_figure_font_sizes
