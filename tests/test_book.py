"""Book checks: the Jupyter Book builds cleanly and every page renders in a real browser.

The page checks live in ``tools/check_book.py`` (its docstring lists them: network, math and raw
TeX, figures, progress-bar logs and widgets, code cells that scroll sideways, local links, links to
the placeholder repository; it also measures how many characters fit on a code cell's line).
``make book`` runs the same checker on the full-budget HTML it builds. Here, in order:

1. Every chapter file under ``book/`` is listed in ``_toc.yml`` (a notebook missing from the toc is
   silently left out of the book, because ``only_build_toc_files`` is on).
2. ``progress_bar`` with ``IQL_PROGRESS=final`` draws one line, on close. The checker itself, on
   a throw-away book with the real ``_config.yml`` (``tiny_book``): it must
   pass on the good pages (a figure, inline and display math, a display equation inside a
   numbered list item, progress bars of ``tqdm.auto`` and of ``iql_tutorial.utils.progress_bar``
   that the build shows as one final line each) and fail on the broken ones (display equations
   indented wrongly, a progress log, an ipywidgets output, code that scrolls, broken links, a link
   to the placeholder repository, a figure or MathJax taken away; and issue 22's rules: a chapter
   page with too many visible code lines and a visible cell over 40 lines, a figure shrunk under
   70% and text under 8 pt as shown, tables wider than the column, a warning on stderr, warning
   text, a log line printed five times, a sentence glued from Python). The rendered pages have no
   repository or launch buttons.
3. The real book (``make test`` deselects this one and runs the chapters once through nbmake
   instead, then renders and checks them: the Makefile's ``quick-book``):
   ``jupyter-book build <repo> --path-output _build/book-test -W --keep-going``
   with ``IQL_QUICK=1`` (warnings are errors: broken references, missing files, a bad toc or a
   notebook that raises all fail the build), then every page of the toc through the checker.
   Built from scratch into its own folder every run, so quick-mode outputs never land in the cache
   of ``make book`` and a stale cache cannot hide a broken notebook. Set
   ``IQL_BOOK_TEST_KEEP_CACHE=1`` to reuse that folder's execution cache between runs.
The full-budget book is checked by ``make book`` itself (``tools/check_book.py _build/html``).

Every build here executes the notebooks as ``make book`` does (``BOOK_EXECUTION_ENV``: progress
bars as one final text line, see ``tools/book_kernel_startup.py``). Chromium is Debian's
``chromium``; when it is missing the set-up installs it with apt-get, and when that is impossible
the tests fail (they never skip).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest
from bs4 import BeautifulSoup

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

import check_book  # noqa: E402
from check_book import (  # noqa: E402
    ANSI,
    TIMING_TEXT,
    Browser,
    CheckError,
    check_output_text,
    check_outputs,
    check_page,
    check_pages,
    find_or_install_chromium,
    is_progress_line,
    placeholder_repository,
    source_of,
    summary,
    toc_docnames,
)

pytestmark = pytest.mark.book

BOOK_TEST_OUT = REPO / "_build" / "book-test"
BUILD_TIMEOUT_S = int(os.environ.get("IQL_BOOK_BUILD_TIMEOUT", "7200"))
# How `make book` executes the notebooks (the Makefile exports the same two variables).
BOOK_EXECUTION_ENV = {"IQL_PROGRESS": "final", "PYTHONSTARTUP": str(REPO / "tools" / "book_kernel_startup.py")}


# --------------------------------------------------------------------------------------------
# building


def _jupyter_book() -> list[str]:
    exe = Path(sys.executable).parent / "jupyter-book"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("jupyter-book")
    if found:
        return [found]
    pytest.fail("jupyter-book is not installed in this environment (see requirements.txt)")


def build_book(src: Path, out: Path, keep_cache: bool = False) -> Path:
    """``jupyter-book build src --path-output out -W --keep-going`` with IQL_QUICK=1.

    Empties ``out/_build`` first (except the execution cache when ``keep_cache``): an
    incremental Sphinx build only reports warnings for the pages it rereads, so reusing the
    environment could hide a warning. Returns the HTML folder; fails with the warnings and the
    tail of the log when the build fails.
    """
    build = out / "_build"
    if build.exists():
        for child in build.iterdir():
            if keep_cache and child.name == ".jupyter_cache":
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, IQL_QUICK="1", PYDEVD_DISABLE_FILE_VALIDATION="1", **BOOK_EXECUTION_ENV)
    env.setdefault("MINARI_DATASETS_PATH", str(REPO / "data"))
    env.setdefault("PYTHONWARNINGS", "ignore:IProgress not found")
    cmd = [*_jupyter_book(), "build", str(src), "--path-output", str(out), "-W", "--keep-going"]
    try:
        proc = subprocess.run(cmd, cwd=src, env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the book build took more than {BUILD_TIMEOUT_S} s: {' '.join(cmd)}")
    log = ANSI.sub("", proc.stdout + "\n" + proc.stderr)
    (out / "build.log").write_text(log)
    if proc.returncode != 0:
        problems = [line for line in log.splitlines() if re.search(r"WARNING|ERROR|Error|Exception", line)]
        pytest.fail(
            f"the book build failed (exit {proc.returncode}): {' '.join(cmd)}\n"
            f"full log: {out / 'build.log'}\n"
            "warnings and errors:\n  " + "\n  ".join(problems[:60]) + "\n--- log tail ---\n" + log[-4000:]
        )
    html = build / "html"
    assert (html / "index.html").exists(), f"no index.html in {html}"
    return html


@pytest.fixture(scope="session")
def browser():
    try:
        exe = find_or_install_chromium()
    except CheckError as exc:
        pytest.fail(str(exc))
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "chrom" in proc.stdout.lower(), (
        f"{exe} --version failed: {proc.stdout} {proc.stderr}"
    )
    with Browser(exe) as b:
        yield b


# --------------------------------------------------------------------------------------------
# the toc


def test_every_chapter_file_is_in_the_toc():
    listed = set(toc_docnames(REPO))
    for docname in listed:
        assert source_of(REPO, docname) is not None, f"_toc.yml lists {docname}, which has no source file"
    book = REPO / "book"
    ignored = {"_static", "_build", ".ipynb_checkpoints", "_templates"}
    missing = sorted(
        p.relative_to(REPO).with_suffix("").as_posix()
        for p in book.rglob("*")
        if p.suffix in (".ipynb", ".md") and not ignored & set(p.relative_to(book).parts)
        if p.relative_to(REPO).with_suffix("").as_posix() not in listed
    )
    assert not missing, f"chapter files not listed in _toc.yml (they would be left out of the book): {missing}"


# --------------------------------------------------------------------------------------------
# progress bars as the book executes them


def test_progress_bar_prints_one_final_line_for_the_book(monkeypatch, capsys):
    from iql_tutorial.utils import progress_bar, progress_interval

    monkeypatch.setenv("IQL_PROGRESS", "final")
    assert progress_interval() == float("inf")
    bar = progress_bar(50, 10, "train", "step")
    for step in range(40):
        bar.update(1)
        bar.set_postfix(loss=step)  # refresh=True: draws nothing either
        bar.refresh()
    assert capsys.readouterr().err == "", "the bar drew something before it was closed"
    bar.close()
    err = capsys.readouterr().err
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip()]
    # the description, the count and the postfix; no elapsed time, rate or ETA (issue 29, item 6)
    assert lines == ["train: 50/50 steps, loss=39"], err
    assert err.endswith("\n")

    quiet = progress_bar(5, 0, "off", "step", enabled=False)
    quiet.update(5)
    quiet.close()
    assert capsys.readouterr().err == ""

    monkeypatch.delenv("IQL_PROGRESS")
    live = progress_bar(5, 0, "live", "step")
    assert live.mininterval == progress_interval() < float("inf")
    live.close()


def test_check_outputs_fails_a_timing_and_passes_the_books_final_lines():
    """Issue 29, item 6: tqdm's elapsed time, ETA and rate in a rendered output fail the page; the
    book's final lines ("DESC: N/TOTAL UNITs, POSTFIX") pass, on stderr too."""

    def page(text: str, stream: str = "stderr") -> BeautifulSoup:
        html = f'<div class="cell_output"><div class="output {stream}"><pre>{text}</pre></div></div>'
        return BeautifulSoup(html, "html.parser")

    timed = [
        "value net: 100%|##########| 3000/3000 [00:12<00:00, 240.13it/s]",
        "awr: 10/10 [00:31, 3.12s/it]",
        "awr hopper: 100%|##| 10000/10000 [01:02:03<00:00, 216.00step/s, score=52.1]",
        "online: 5/50 [00:02<00:20, 4.63s/env step]",
    ]
    for line in timed:
        assert any("show a timing" in p for p in check_outputs(page(line))), line
    final = [
        "value net: 3,000/3,000",
        "awr hopper: 10,000/10,000 steps, score=52.1",
        "30/30",
        "online: 50/50 env steps",
    ]
    for line in final:
        assert check_outputs(page(line)) == [] and check_output_text(page(line)) == [], line
    # a measured speed printed on purpose, with its unit spelled out, is not a progress bar's timing
    assert check_outputs(page("216.0 updates/s on this CPU", "stdout")) == []


# --------------------------------------------------------------------------------------------
# the checker's self-tests on a tiny book

TINY_FIGURE = """\
import matplotlib.pyplot as plt
import numpy as np

u = np.linspace(-2, 2, 101)
fig, ax = plt.subplots(figsize=(4, 3))
ax.plot(u, np.abs(0.7 - (u < 0)) * u**2)
ax.set_title("expectile loss")
plt.show()
"""
# Live, these bars refresh several times a second (several lines each in a rendered page);
# executed for the book, each must show one line, its final state.
TINY_TQDM = """\
import time

from tqdm.auto import tqdm

for _ in tqdm(range(20), desc="tqdm.auto"):
    time.sleep(0.05)
"""
TINY_PROGRESS_BAR = """\
from iql_tutorial.utils import progress_bar

bar = progress_bar(20, 0, "progress_bar", "step")
for step in range(20):
    time.sleep(0.05)
    bar.update(1)
    bar.set_postfix(loss=1.0 / (step + 1))
bar.close()
print("trained")
"""
GOOD_LIST_MATH = """\
# Equations in lists

One update of the value network, in two steps:

1. Compute the advantage of each action of the batch under the target critic,

   $$
   u_i = Q_{\\hat\\theta}(s_i, a_i) - V_\\psi(s_i) ,
   $$

   with the value network's current weights.
2. Minimise the expectile loss of those advantages:

   $$
   \\begin{aligned}
   L_V(\\psi) &= \\frac{1}{N} \\sum_i L_2^\\tau(u_i), \\\\
   L_2^\\tau(u) &= \\lvert \\tau - \\mathbb{1}(u < 0) \\rvert \\, u^2 .
   \\end{aligned}
   $$
"""
# The same list, broken twice: no blank line before the first equation (it parses as inline math
# between two stray dollar signs), the second indented so far that it becomes a code block.
BAD_LIST_MATH = """\
# Broken equations in lists

1. Compute the advantage of each action of the batch under the target critic,
   $$
   u_i = Q_{\\hat\\theta}(s_i, a_i) - V_\\psi(s_i) ,
   $$
   with the value network's current weights.
2. Minimise the expectile loss of those advantages:

        $$
        L_V(\\psi) = \\frac{1}{N} \\sum_i L_2^\\tau(u_i) .
        $$
"""
BAD_PROGRESS_LOG = """\
import sys

for p in range(0, 101, 10):  # what a bar refreshed in a captured output leaves behind
    print(f"{p:3d}%|{'#' * (p // 10):10}| {p}/100", file=sys.stderr, flush=True)
"""
BAD_WIDGET = """\
import ipywidgets

ipywidgets.FloatProgress(value=0.5, max=1.0)
"""
BAD_LONG_LINE = 'LONG = "' + "x" * 200 + '"\nprint(LONG)\n'
# a shell command in the prose, wider than the column
BAD_PROSE_BLOCK = "```bash\npython -m iql_tutorial train" + " --flag value" * 12 + "\n```\n"


# Issue 22, item 1: a chapter 6-8 page (at most 100 visible code lines) with 41 + 35 + 30 = 106
# visible lines, one cell of 41 (at most 40), a collapsed cell of 60 (hide-input: not visible)
# and a removed one of 20 (remove-cell: not on the page).
def _code_lines(n: int, name: str) -> str:
    return "\n".join(f"{name}_{i} = {i}" for i in range(n)) + "\n"


CODE_HEAVY_CELLS = [
    (_code_lines(41, "a"), []),
    (_code_lines(35, "b"), []),
    (_code_lines(30, "c"), []),
    (_code_lines(60, "d"), ["hide-input"]),
    (_code_lines(20, "e"), ["remove-cell"]),
]
# Item 5: a figure too wide for the column (shown shrunk), one whose legend is 5 pt, a DataFrame
# and a Markdown table wider than the column.
BAD_WIDE_FIGURE = """\
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(16, 3))
ax.plot([0, 1], [0, 1], label="too wide")
ax.legend()
plt.show()
"""
BAD_SMALL_FONT = """\
fig, ax = plt.subplots(figsize=(4, 3))
ax.plot([0, 1], [0, 1], label="tiny legend")
ax.legend(fontsize=5)
plt.show()
"""
BAD_WIDE_DATAFRAME = """\
import pandas as pd

pd.DataFrame({f"deviation_column_{i}": [1.2345, 2.3456] for i in range(25)})
"""
BAD_WIDE_MARKDOWN_TABLE = (
    "| " + " | ".join(f"`lever_setting_number_{i}`" for i in range(12)) + " |\n"
    "|" + "---|" * 12 + "\n"
    "| " + " | ".join("`IQL_THREADS=2,spin=3000`" for _ in range(12)) + " |\n"
)
# Item 5: a warning on stderr, warning text on stdout, a log line printed five times; item 3: a
# sentence built in Python and glued.
BAD_WARNING = """\
import warnings

warnings.warn("this setting is deprecated")
"""
BAD_WARNING_TEXT = 'print("Warning: tight_layout not applied")\n'
BAD_REPEATED_LOG = """\
for seed in range(5):
    print("threads [auto] on cpu: 2 threads (PyTorch's default)")
    print(f"seed {seed} trained")
"""
BAD_GLUED_SENTENCE = """\
from myst_nb import glue

leak = "It rises from cell to cell, and the policy follows it to the goal."
glue("leak", leak, display=False)
glue("short_label", "AWR", display=False)
"""


# Issue 28: a video and an animated GIF as the book shows them (video_html: embedded, with a text
# alternative, at most the column's width), and the media a page must not have.
MEDIA_FRAMES = """\
import numpy as np
from IPython.display import HTML

from iql_tutorial.viz.behaviour import save_frames, video_html

frames = [np.full((64, 96, 3), 40 * i, dtype=np.uint8) for i in range(6)]
save_frames(frames, "clip.mp4", fps=5)
save_frames(frames, "clip.gif", fps=5)
"""
GOOD_MEDIA = """\
video = video_html("clip.mp4", alt="six grey frames, dark to light")
gif = video_html("clip.gif", alt="the same six frames, as a GIF")
HTML(video + gif)
"""
BAD_MEDIA_REMOTE = "HTML('<video controls src=\"https://example.invalid/clip.mp4\"></video>')\n"
BAD_MEDIA_MISSING = (
    'HTML(\'<video controls aria-label="a clip"><source src="missing.mp4" type="video/mp4"></video>\')\n'
)
BAD_MEDIA_WIDE = """\
HTML(video_html("clip.mp4", alt="too wide").replace("max-width: 100%; height: auto;", "width: 3000px; max-width: none;"))
"""
BAD_MEDIA_NO_ALT = 'HTML(video_html("clip.gif", alt="").replace(\' alt=""\', ""))\n'


def _notebook(markdown: str, *code: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell(markdown), *(nbformat.v4.new_code_cell(c) for c in code)]
    return nb


TINY_GOOD_PAGES = ["book/intro", "book/tiny", "book/lists", "book/media", "book/bibliography"]


@pytest.fixture(scope="module")
def tiny_book(tmp_path_factory) -> tuple[Path, Path]:
    """A book with the real configuration, the intro, the bibliography, good pages and broken
    ones, built like the real one."""
    src = tmp_path_factory.mktemp("tiny-book")
    (src / "book").mkdir()
    shutil.copy(REPO / "_config.yml", src / "_config.yml")
    for name in ("intro.md", "bibliography.md", "references.bib"):
        shutil.copy(REPO / "book" / name, src / "book" / name)
    if (REPO / "book" / "_static").is_dir():
        shutil.copytree(REPO / "book" / "_static", src / "book" / "_static")
    (src / "_toc.yml").write_text(
        textwrap.dedent(
            """\
            format: jb-book
            root: book/intro
            chapters:
              - file: book/tiny
              - file: book/lists
              - file: book/bad_math
              - file: book/bad_cells
              - file: book/06_code_heavy
              - file: book/bad_figures
              - file: book/bad_outputs
              - file: book/media
              - file: book/bad_media
              - file: book/bibliography
            """
        )
    )
    tiny = _notebook(
        "# A tiny chapter\n\nThe expectile loss $L_2^\\tau(u) = |\\tau - \\mathbb{1}(u<0)|\\,u^2$ "
        "{cite:p}`newey1987expectile`:\n\n$$\n\\arg\\min_m \\mathbb{E}\\left[L_2^\\tau(y - m)\\right]\n$$\n\n"
        "See {ref}`the list <equations-in-lists>` and [the intro](intro.md).",
        TINY_FIGURE,
        TINY_TQDM,
        TINY_PROGRESS_BAR,
    )
    # sections, as in a chapter: the theme then shows the page's contents beside the text
    tiny.cells.insert(2, nbformat.v4.new_markdown_cell("## Progress bars\n\nOne line each, at 100%."))
    tiny.cells.append(nbformat.v4.new_markdown_cell("## The end\n\nThat is all."))
    nbformat.write(tiny, src / "book" / "tiny.ipynb")
    (src / "book" / "lists.md").write_text("(equations-in-lists)=\n" + GOOD_LIST_MATH)
    (src / "book" / "bad_math.md").write_text(BAD_LIST_MATH)
    bad_cells = _notebook("# Broken cells\n\n" + BAD_PROSE_BLOCK, BAD_PROGRESS_LOG, BAD_WIDGET, BAD_LONG_LINE)
    nbformat.write(bad_cells, src / "book" / "bad_cells.ipynb")
    heavy = _notebook("# Too much code\n\nA chapter 6-8 page shows at most 100 lines of code.")
    for code, tags in CODE_HEAVY_CELLS:
        heavy.cells.append(nbformat.v4.new_code_cell(code, metadata={"tags": tags}))
    nbformat.write(heavy, src / "book" / "06_code_heavy.ipynb")
    figures = _notebook(
        "# Figures and tables too wide\n\n" + BAD_WIDE_MARKDOWN_TABLE,
        BAD_WIDE_FIGURE,
        BAD_SMALL_FONT,
        BAD_WIDE_DATAFRAME,
    )
    nbformat.write(figures, src / "book" / "bad_figures.ipynb")
    outputs = _notebook(
        "# Noisy outputs\n\nA glued label: {glue:text}`short_label`.",
        BAD_WARNING,
        BAD_WARNING_TEXT,
        BAD_REPEATED_LOG,
        BAD_GLUED_SENTENCE,
    )
    nbformat.write(outputs, src / "book" / "bad_outputs.ipynb")
    media = _notebook("# A video\n\nAn agent acting, as a video and as a GIF.", MEDIA_FRAMES, GOOD_MEDIA)
    nbformat.write(media, src / "book" / "media.ipynb")
    bad_media = _notebook("# Bad media\n\nFrom the network, missing, too wide, without a text alternative.",
                          MEDIA_FRAMES, BAD_MEDIA_REMOTE, BAD_MEDIA_MISSING, BAD_MEDIA_WIDE, BAD_MEDIA_NO_ALT)  # fmt: skip
    nbformat.write(bad_media, src / "book" / "bad_media.ipynb")
    html = build_book(src, src / "out")
    return src, html


def _check(browser, tiny_book, docname: str, shots: str = "screenshots-negative"):
    src, html = tiny_book
    return check_page(browser, src, html, docname, html.parent / shots)


def test_tiny_book_progress_bars_are_one_final_line(tiny_book):
    """Executed for the book, each bar (tqdm.auto and progress_bar) leaves one line in the page,
    text, at 100%."""
    _, html = tiny_book
    soup = BeautifulSoup((html / "book" / "tiny.html").read_text(encoding="utf-8"), "html.parser")
    bars = {}
    for pre in soup.select(".cell_output pre"):
        lines = [line for line in pre.get_text().splitlines() if is_progress_line(line)]
        for line in lines:
            bars[line.split(":")[0].strip()] = line
        assert len(lines) <= 1, f"an output block of the tiny notebook has {len(lines)} bar lines: {lines}"
        assert not TIMING_TEXT.search(pre.get_text()), f"a timing in the page: {pre.get_text()!r}"
    assert bars == {"tqdm.auto": "tqdm.auto: 20/20", "progress_bar": "progress_bar: 20/20 steps, loss=0.05"}, bars
    assert not soup.select('script[type="application/vnd.jupyter.widget-view+json"]'), "widget outputs in the page"
    assert "trained" in soup.get_text()


def test_tiny_book_passes_the_page_checks(browser, tiny_book):
    src, html = tiny_book
    reports = check_pages(browser, src, html, TINY_GOOD_PAGES, html.parent / "screenshots")
    print(summary(reports))
    assert all(not r.problems for r in reports.values()), summary(reports)
    tiny = reports["book/tiny"]
    assert tiny.figures_expected == 1 and tiny.output_images == 1, summary(reports)
    assert tiny.math_expected >= 2 and tiny.math_rendered == tiny.math_expected, summary(reports)
    assert tiny.local_links >= 2, summary(reports)
    lists = reports["book/lists"]
    assert lists.math_expected == 2 and lists.math_rendered == 2, summary(reports)
    assert reports["book/intro"].figures_expected == 0
    # the width the notebooks' code is wrapped to: characters on one line of a code cell
    assert tiny.code_columns is not None and 60 <= tiny.code_columns <= 200, summary(reports)
    # every code line of the tiny chapter is visible and counted; its figure is at full scale
    shown = sum(1 for code in (TINY_FIGURE, TINY_TQDM, TINY_PROGRESS_BAR) for line in code.splitlines() if line.strip())
    assert (tiny.visible_code_lines, tiny.collapsed_code_lines, tiny.removed_code_lines) == (shown, 0, 0), tiny
    assert 0 < tiny.code_share < 1, tiny
    print(f"code cells fit {tiny.code_columns} characters per line at {check_book.WINDOW_WIDTH} px")


def test_tiny_book_has_no_repository_or_launch_buttons(tiny_book):
    """_config.yml's repository does not exist: no page links to it, and no page has a launch
    (Binder, Colab, JupyterHub, Thebe) or repository/issues/edit button."""
    src, html = tiny_book
    placeholder = placeholder_repository(src)
    assert placeholder, "_config.yml's repository buttons are on: is the repository real now? then drop this test"
    pages = sorted(html.rglob("*.html"))
    assert pages
    for page in pages:
        soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
        hrefs = [a.get("href") or "" for a in soup.find_all("a")]
        bad = [h for h in hrefs if placeholder in h or re.search(r"mybinder\.org|colab\.research", h)]
        assert not bad, f"{page.relative_to(html)} links to {bad}"
        buttons = soup.select(
            ".dropdown-launch-buttons, .btn-launch-binder, .btn-launch-colab, .thebe-launch-button, "
            ".btn-source-repository-button, .btn-source-issues-button, .btn-source-edit-button"
        )
        assert not buttons, (
            f"{page.relative_to(html)} has repository or launch buttons: {[str(b)[:120] for b in buttons]}"
        )


def test_tiny_book_check_catches_equations_indented_wrongly(browser, tiny_book):
    report = _check(browser, tiny_book, "book/bad_math")
    assert any("raw TeX left in the prose" in p and "$" in p for p in report.problems), report.problems
    assert any("display math rendered as a code block" in p for p in report.problems), report.problems


def test_tiny_book_check_catches_progress_logs_widgets_and_wide_code(browser, tiny_book):
    report = _check(browser, tiny_book, "book/bad_cells")
    assert any("progress log" in p for p in report.problems), report.problems
    assert any("ipywidgets outputs" in p for p in report.problems), report.problems
    assert any("code cell's input scrolls horizontally" in p for p in report.problems), report.problems
    assert any("code block in the prose scrolls horizontally" in p for p in report.problems), report.problems


def test_tiny_book_check_counts_visible_code_and_fails_too_much(browser, tiny_book):
    """Item 1: collapsed (hide-input) and removed (remove-cell) code is not visible code; a chapter
    6-8 page over 100 visible lines fails, and so does a visible cell over 40 lines."""
    report = _check(browser, tiny_book, "book/06_code_heavy")
    assert (report.visible_code_lines, report.collapsed_code_lines, report.removed_code_lines) == (106, 60, 20), report
    assert report.longest_visible_cell == 41, report
    problems = "\n".join(report.problems)
    assert "106 visible code lines (at most 100 on this page)" in problems, problems
    assert "a visible code cell of 41 lines (at most 40)" in problems, problems
    assert check_book.code_line_limit("book/03_twin_critics") == 150
    assert check_book.code_line_limit("book/datasets") == 100
    assert check_book.code_line_limit("book/performance") is None


def test_tiny_book_check_catches_shrunk_figures_small_text_and_wide_tables(browser, tiny_book):
    """Item 5: a figure shown under 70% of its width, a legend under 8 pt as shown, a DataFrame and
    a Markdown table wider than the column."""
    report = _check(browser, tiny_book, "book/bad_figures")
    problems = "\n".join(report.problems)
    shrunk = [p for p in report.problems if "of its natural width" in p]
    assert len(shrunk) == 1 and "; at least 0.7)" in shrunk[0], problems
    small = [p for p in report.problems if "smallest text" in p]
    # the 16-inch figure's 10-pt legend is shrunk below 8 pt too; the 4-inch one's 5-pt legend is at full scale
    assert any("(5 pt at 100 dpi, shown at 1.00) is 5.2 pt" in p for p in small), problems
    assert sum("a table is wider than the column" in p for p in report.problems) == 2, problems


def test_tiny_book_check_catches_warnings_repeated_logs_and_glued_sentences(browser, tiny_book):
    """Item 5: a warning on stderr, warning text on stdout, a log line five times in one output;
    item 3: a sentence glued from Python (a short glued label passes)."""
    report = _check(browser, tiny_book, "book/bad_outputs")
    problems = "\n".join(report.problems)
    assert "stderr in an output" in problems and "UserWarning: this setting is deprecated" in problems, problems
    assert "warning text in an output: 'Warning: tight_layout not applied'" in problems, problems
    assert "a log line repeated 5 times in one output" in problems and "threads [auto]" in problems, problems
    assert "seed 0 trained" not in problems
    glued = [p for p in report.problems if "glued string" in p]
    assert len(glued) == 1 and "'leak' (14 words)" in glued[0], problems


def test_tiny_book_check_catches_videos_from_the_network_missing_too_wide_or_without_text(browser, tiny_book):
    """Issue 28: a video from the network (which also has no text alternative and does not load), one
    whose file is missing, one wider than the column, and a GIF without alt text each fail; the good
    page's embedded video and GIF pass (test_tiny_book_passes_the_page_checks)."""
    report = _check(browser, tiny_book, "book/bad_media")
    problems = "\n".join(report.problems)
    assert "a video loads https://example.invalid/clip.mp4 from the network" in problems, problems
    assert "a video points at missing.mp4, which is missing on disk" in problems, problems
    assert sum("does not load in the browser" in p for p in report.problems) == 2, problems
    assert "the video clip.mp4 has no text alternative" in problems, problems
    assert "the animated image inline has no text alternative" in problems, problems
    wide = [p for p in report.problems if "wider than the column" in p]
    assert len(wide) == 1 and wide[0].startswith("the video inline is wider than the column (3000 > "), problems


def test_png_info_reads_dpi_and_the_font_record(tmp_path):
    """The figure rule's inputs: Matplotlib's PNG records its dpi, and the book's kernel start-up
    adds the smallest font size drawn (here a 5-pt legend; 'none' for a figure without text)."""
    code = (
        "import io, runpy, sys\n"
        f"runpy.run_path({str(REPO / 'tools' / 'book_kernel_startup.py')!r})\n"
        "import matplotlib\nmatplotlib.use('agg')\nimport matplotlib.pyplot as plt\n"
        "fig, ax = plt.subplots(figsize=(2, 2))\nax.plot([0, 1], label='x')\nax.legend(fontsize=5)\n"
        "fig.savefig(sys.argv[1], dpi=150)\n"
        "fig, ax = plt.subplots(figsize=(2, 2))\nax.axis('off')\nfig.savefig(sys.argv[2])\n"
    )
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    subprocess.run([sys.executable, "-c", code, str(a), str(b)], check=True, timeout=120)
    dpi, texts = check_book.png_info(a.read_bytes())
    assert round(dpi) == 150 and texts[check_book.FONT_RECORD_KEY] == "5", (dpi, texts)
    assert check_book.png_info(b.read_bytes())[1][check_book.FONT_RECORD_KEY] == "none"


def test_tiny_book_check_catches_broken_links(browser, tiny_book):
    src, html = tiny_book
    soup = BeautifulSoup((html / "book" / "tiny.html").read_text(encoding="utf-8"), "html.parser")
    article = soup.select_one("article") or soup.body
    for href in (
        "nowhere.html",
        "#no-such-anchor",
        "intro.html#no-such-section",
        "../../../outside.html",
        f"https://github.com/{placeholder_repository(src)}",
    ):
        link = soup.new_tag("a", href=href)
        link.string = f"link to {href}"
        article.append(link)
    (html / "book" / "links.html").write_text(str(soup), encoding="utf-8")
    (html / "book" / "../../../outside.html").resolve().write_text("<html><body>outside</body></html>")
    report = _check(browser, tiny_book, "book/links")
    problems = "\n".join(report.problems)
    assert "nowhere.html" in problems and "does not exist" in problems, problems
    assert "no id 'no-such-anchor'" in problems, problems
    assert "no id 'no-such-section' in intro.html" in problems, problems
    assert "leaves the built book" in problems, problems
    assert "placeholder" in problems, problems


def test_tiny_book_check_catches_a_missing_figure_file(browser, tiny_book):
    src, html = tiny_book
    images = list((html / "_images").glob("*"))
    assert images, "the tiny notebook's figure was not written to _images"
    for image in images:
        image.unlink()
    report = _check(browser, tiny_book, "book/tiny")
    assert any("missing on disk" in p for p in report.problems), report.problems


def test_tiny_book_check_catches_a_figure_missing_from_the_page(browser, tiny_book):
    src, html = tiny_book
    page = html / "book" / "tiny.html"
    soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
    for img in soup.select(".cell_output img"):
        img.decompose()
    page.write_text(str(soup), encoding="utf-8")
    report = _check(browser, tiny_book, "book/tiny")
    assert report.figures_expected == 1, "the figure count must come from the executed notebook"
    assert any("figures in the executed notebook" in p for p in report.problems), report.problems


def test_tiny_book_check_catches_math_left_unrendered(browser, tiny_book):
    src, html = tiny_book
    mathjax = html / "_static" / "mathjax"
    assert mathjax.is_dir(), "MathJax was not copied into the book's _static folder"
    shutil.rmtree(mathjax)
    report = _check(browser, tiny_book, "book/intro")
    assert report.math_expected > 0 and report.math_rendered == 0, report
    assert any("not rendered" in p for p in report.problems), report.problems
    assert any("raw TeX" in p for p in report.problems), report.problems


# --------------------------------------------------------------------------------------------
# the real book


@pytest.fixture(scope="module")
def real_book() -> Path:
    keep = os.environ.get("IQL_BOOK_TEST_KEEP_CACHE", "") not in ("", "0")
    return build_book(REPO, BOOK_TEST_OUT, keep_cache=keep)


def _check_built_book(browser, html: Path) -> None:
    reports, problems = check_book.check_book(REPO, html, html.parent / "screenshots", browser=browser)
    print(summary(reports))
    failed = "\n".join(problems)
    assert all(not r.problems for r in reports.values()) and not problems, (
        f"page checks failed:\n{summary(reports)}\n{failed}"
    )


def test_real_book_builds_and_renders(browser, real_book):
    _check_built_book(browser, real_book)
