#!/usr/bin/env python
"""Page checks of a built Jupyter Book, in headless Chromium: the pages readers get are the pages we check.

Usage (``make book`` runs it on the HTML it just built)::

    .venv/bin/python tools/check_book.py [HTML] [--src REPO] [--screenshots DIR]

``HTML`` defaults to ``_build/html``; ``--src`` is the book's source root (the folder with
``_toc.yml``, default: this repository). Exit status 0 when every page of the toc passes, 1 when a
check fails, 2 when the checks could not run (no Chromium, no such folder). ``tests/test_book.py``
uses the same functions on a tiny book (the checker's self-tests) and on the quick-mode real book.

Chromium (Debian's ``chromium``, installed with apt-get when missing and run as root; or
``CHROMIUM=/path``) opens every page of the toc from ``file://``, in a window of
``WINDOW_WIDTH`` x ``WINDOW_HEIGHT`` CSS pixels, through the DevTools protocol. It waits for the
page's load event, MathJax's typesetting and the web fonts, saves a screenshot, opens every
``<details>`` (collapsed content is checked too), measures the code cells, and returns the DOM. A
page fails when:

- anything is loaded from the network (every request the browser makes is seen, plus the
  ``src``/``href`` of scripts, stylesheets and images); the book must read offline;
- math is not typeset by the book's own MathJax (an element of class ``math`` without an
  ``mjx-container``; any ``mjx-merror``), or raw TeX is visible in the prose, outside code and
  typeset math: ``$`` (a lone dollar is the trace of a display equation that failed to parse,
  e.g. one without a blank line before it in a list item), ``\\(``, ``\\)``, ``\\[``, ``\\]``,
  ``\\begin{``; or a display equation renders as a code block in the prose (indented too deeply);
- a figure of the executed notebook is missing from the page's cell outputs, or an ``img`` has no
  ``src`` or points at a file that is not there (which pages have figures is read from the executed
  notebooks, never hard-coded);
- an output block of a code cell shows one progress bar (the same description) on more than one
  line, i.e. a log of refreshes, or more than ``MAX_PROGRESS_LINES`` progress-bar lines in all
  (``NN%|``), or an ipywidgets output (an empty box in a static page) is rendered;
- an output shows a timing (``TIMING_TEXT``: a progress bar's ``[00:12<00:03`` or its rate,
  ``216.00step/s``, ``it/s``, ``s/it``): it differs on every build and machine, so the book's bars
  end on one line without it (``"awr hopper: 10,000/10,000 steps"``, see
  ``iql_tutorial.utils.progress.final_line_format``);
- a ``pre`` of a code cell (input or output) or of a code block in the prose scrolls horizontally
  (``scrollWidth > clientWidth``);
- a display equation is wider than the text column (MathJax centres it, so both of its ends are cut);
- a local link (``a href`` to a file or an anchor) does not resolve: a missing file, a missing
  ``id``, or a target outside the built book;
- a link points at the repository of ``_config.yml`` while its repository and launch buttons are
  off: that URL is then a placeholder for a repository that does not exist yet (repository,
  issue, edit and Binder/Colab launch buttons all would link there; see ``placeholder_repository``).

And the reader-first rules of issue 22 (each with a failing tiny-book test in tests/test_book.py):

- too much code in view (``check_code_lines``): visible code lines are the non-blank lines of
  code-cell inputs on the page outside a collapsed toggle (``hide-input``/``hide-cell`` count as
  hidden; ``remove-*`` cells are not on the page), measured with every toggle closed; chapters
  1-5 at most 150, chapters 6-8 and the dataset card at most 100 (``CODE_LINE_LIMITS``), and no
  visible cell over ``MAX_VISIBLE_CELL_LINES`` (40) lines on any page;
- a figure shown under 70% of its natural width (displayed width / ``naturalWidth`` in the
  browser), or a Matplotlib figure whose smallest text is under 8 pt as displayed: the font size
  is measured, not assumed from a style, from the smallest font Matplotlib drew into the figure
  (recorded into the PNG by ``tools/book_kernel_startup.py``), the PNG's dpi and the displayed
  scale (``check_figures`` has the arithmetic). A shared style could be bypassed by any
  ``fontsize=`` argument and says nothing about the scale the page shows the figure at; this
  measures what the reader gets;
- a table wider than the text column (cut at the column's edge or scrolled sideways in a wrapper);
- a video or animated image (GIF) that loads from the network or from a missing file, does not load
  in the browser, has no text alternative, or is wider than the text column (``check_media``;
  issue 28: the book embeds its short videos as base64, see ``iql_tutorial.viz.behaviour.video_html``);
- warning text in an output: stderr that is not a progress bar's final line, a line with
  ``Warning``/``UserWarning``/``DeprecationWarning``/``WARNING``/``warnings.warn``, or one log
  line printed twice in one output block (lines of 12 characters or more, with letters);
- a glued string of more than 8 words (a sentence built in Python), read from the executed
  notebook's glue outputs (the execution cache of ``make book``; the nbmake-executed copies of
  ``make test``).

``tools/page_report.py`` prints the per-page code figures (visible, collapsed, removed code lines,
code share of the page height) these checks measure.

The checker also reports how many characters fit on one line of a code cell at this window width
(``code_columns``): the width the notebooks' code is wrapped to.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import nbformat
from bs4 import BeautifulSoup

REPO = Path(__file__).resolve().parents[1]

WINDOW_WIDTH, WINDOW_HEIGHT = 1280, 2400
# Seconds a page may take to load (and to be measured); a machine busy with other work may need
# more: IQL_PAGE_TIMEOUT. IQL_BROWSER_WORKERS: pages checked at once.
PAGE_TIMEOUT_S = int(os.environ.get("IQL_PAGE_TIMEOUT", "120"))
MATHJAX_TIMEOUT_S = 60
MEDIA_TIMEOUT_S = 10  # a video's metadata must load within this many seconds (a local file: well under one)
BROWSER_WORKERS = int(os.environ.get("IQL_BROWSER_WORKERS", "2"))
MAX_PROGRESS_LINES = 12  # one final line per loop; a cell may run a handful of loops

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--mute-audio",
    f"--window-size={WINDOW_WIDTH},{WINDOW_HEIGHT}",
]

# Mime types myst-nb shows as an <img>, and those it prefers over an image when both are present.
IMAGE_MIMES = ("image/svg+xml", "image/png", "image/jpeg", "image/gif", "image/webp")
PREFERRED_OVER_IMAGES = ("application/vnd.jupyter.widget-view+json", "application/javascript", "text/html")
REMOVE_OUTPUT_TAGS = {"remove-cell", "remove_cell", "remove-output", "remove_output"}
SOURCE_SUFFIXES = (".ipynb", ".md", ".rst")
# Text inside these elements is code or already-typeset math, not prose.
NON_PROSE_TAGS = {"script", "style", "pre", "code", "kbd", "samp", "textarea", "noscript", "template", "mjx-container"}
RAW_TEX_MARKERS = ("$", "\\(", "\\)", "\\[", "\\]", "\\begin{")
# Code blocks in the prose that may show TeX source on purpose.
TEX_SOURCE_LANGUAGES = ("highlight-latex", "highlight-tex")
PROGRESS_LINE = re.compile(r"\d{1,3}%\|")
# A bar's final line in the book: "DESC: N/TOTAL [UNITs][, POSTFIX]" (final_line_format).
FINAL_PROGRESS_LINE = re.compile(r"^(?:.+?: )?\d[\d,]*/\d[\d,]*(?: [A-Za-z][\w ]*)?(?:, .+)?$")
# A timing in an output: tqdm's "[elapsed<remaining" or "[elapsed, rate", its rate glued to a number
# ("12.3it/s", "216.00step/s", "4.63s/step"), or the bare "it/s" / "s/it".
TIMING_TEXT = re.compile(r"\[\d+:\d{2}(?::\d{2})?[<,]|\bit/s\b|\bs/it\b|\d[A-Za-z]{1,12}/s\b|\ds/[A-Za-z]{1,12}\b")
WIDGET_TEXT = re.compile(r"\b(?:HBox|VBox|FloatProgress|IntProgress|HTML)\(children=|\bFloatProgress\(value=")
ANSI = re.compile(r"\x1b\[[0-9;]*m")

# Issue 22, item 1: the code a reader sees. Visible code lines = non-blank lines of code-cell inputs
# that are on the page and not inside a collapsed toggle (hide-input, hide-cell); removed cells
# (remove-cell, remove-input) are not on the page at all. Limits per page (docname pattern, most
# visible lines); every page: no visible cell longer than MAX_VISIBLE_CELL_LINES.
CODE_LINE_LIMITS = [
    (re.compile(r"^book/0[1-5]_"), 150),  # chapters 1-5: the teaching code
    (re.compile(r"^book/(0[6-8]_|datasets$)"), 100),  # chapters 6-8 and the dataset card
]
MAX_VISIBLE_CELL_LINES = 40
REMOVE_INPUT_TAGS = {"remove-cell", "remove_cell", "remove-input", "remove_input"}
# Item 5: figures at no less than 70% of their natural width, text in them at least 8 pt as shown.
MIN_FIGURE_SCALE = 0.7
MIN_DISPLAYED_FONT_PT = 8.0
FONT_RECORD_KEY = "IQL min font pt"  # tEXt chunk written by tools/book_kernel_startup.py
# Item 5: no warning text in an output; no log line twice in one output.
WARNING_TEXT = re.compile(r"\b\w*Warning\b|\bWARNING\b|\bwarnings\.warn\b")
MIN_REPEATED_LINE_CHARS = 12  # shorter lines (separators, "done") may repeat
# Item 3: a glued value is a number, a short label, a table or a figure; never a sentence.
MAX_GLUED_WORDS = 8


class CheckError(RuntimeError):
    """The checks could not run (no browser, no HTML); distinct from a page that fails them."""


# --------------------------------------------------------------------------------------------
# the book's sources


def toc_docnames(src: Path) -> list[str]:
    """The documents of ``src/_toc.yml``, root first, in the toc's order."""
    from sphinx_external_toc.parsing import parse_toc_yaml

    site_map = parse_toc_yaml(src / "_toc.yml")
    ordered: list[str] = []

    def visit(docname: str) -> None:
        if docname in ordered:
            return
        ordered.append(docname)
        for subtree in site_map[docname].subtrees:
            for item in subtree.items:
                if isinstance(item, str):  # a file entry (globs and urls are other types)
                    visit(item)

    visit(site_map.root.docname)
    ordered.extend(d for d in site_map if d not in ordered)
    return ordered


def source_of(src: Path, docname: str) -> Path | None:
    for suffix in SOURCE_SUFFIXES:
        path = src / f"{docname}{suffix}"
        if path.exists():
            return path
    return None


def figure_outputs(nb: nbformat.NotebookNode) -> int:
    """How many outputs of an executed notebook myst-nb renders as an image."""
    if nb.metadata.get("mystnb", {}).get("remove_code_outputs"):
        return 0
    count = 0
    for cell in nb.cells:
        if cell.cell_type != "code" or REMOVE_OUTPUT_TAGS & set(cell.metadata.get("tags", [])):
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") not in ("display_data", "execute_result"):
                continue
            if "scrapbook" in output.get("metadata", {}):  # glued outputs are shown elsewhere
                continue
            data = output.get("data", {})
            if any(m in data for m in PREFERRED_OVER_IMAGES):
                continue
            if any(m in data for m in IMAGE_MIMES):
                count += 1
    return count


def executed_notebook(src: Path, build: Path, docname: str, glue: bool = False) -> nbformat.NotebookNode | None:
    """The notebook as executed for this build: myst-nb's copy in ``_build/jupyter_execute``, else
    the execution cache's record, else the source's stored outputs; None for plain Markdown pages.

    ``glue``: with the glue outputs, which myst-nb strips from its copy (so the copy is skipped):
    the cache's record (``make book``), else the source itself when it was executed before the build
    (``make test``'s nbmake copies); None also for a notebook with no outputs anywhere."""
    executed = build / "jupyter_execute" / f"{docname}.ipynb"
    if not glue and executed.exists():
        nb = nbformat.read(executed, as_version=4)
        if any(c.get("execution_count") for c in nb.cells if c.cell_type == "code"):
            return nb
        # a rebuild that took the notebook from the execution cache leaves an unexecuted copy
        # here: the outputs on the page are the cache's
    source = source_of(src, docname)
    if source is None or source.suffix != ".ipynb":
        return None
    cache_dir = build / ".jupyter_cache"
    if cache_dir.exists():
        from jupyter_cache import get_cache

        try:
            return get_cache(cache_dir).merge_match_into_file(str(source))[1]
        except KeyError:
            pass
    nb = nbformat.read(source, as_version=4)
    return nb if not glue or any(c.get("outputs") for c in nb.cells if c.cell_type == "code") else None


def placeholder_repository(src: Path) -> str | None:
    """``owner/name`` of ``_config.yml``'s repository while no button uses it (the repository,
    issues and edit buttons off, no launch button): the URL is then a placeholder, kept in one
    place for the day the repository exists, and nothing in the book may link to it. None once
    a button is on (the repository is real then) or when no URL is set."""
    import yaml

    config = yaml.safe_load((src / "_config.yml").read_text()) or {}
    url = ((config.get("repository") or {}).get("url") or "").strip()
    html = config.get("html") or {}
    launch = config.get("launch_buttons") or {}
    buttons = [html.get(k) for k in ("use_repository_button", "use_issues_button", "use_edit_page_button")]
    buttons += [launch.get(k) for k in ("binderhub_url", "colab_url", "jupyterhub_url", "thebe")]
    if not url or any(buttons):
        return None
    path = urlparse(url).path.strip("/")
    return path.removesuffix(".git") or None


def unexecuted_notebooks(src: Path, build: Path, docnames: list[str]) -> list[str]:
    """Notebooks of the toc with code but no executed code cell in this build."""
    missing = []
    for docname in docnames:
        source = source_of(src, docname)
        if source is None or source.suffix != ".ipynb":
            continue
        nb = executed_notebook(src, build, docname)
        code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
        if code and not any(c.get("execution_count") for c in code):
            missing.append(docname)
    return missing


# --------------------------------------------------------------------------------------------
# the browser


def find_or_install_chromium() -> str:
    """Debian's chromium; installed with apt-get when missing. Raises CheckError otherwise."""
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    how = "apt-get update && apt-get install -y chromium"
    if not shutil.which("apt-get"):
        raise CheckError(
            f"headless Chromium is required for the book checks and apt-get is not available: install chromium (Debian: `{how}`) or set CHROMIUM=/path/to/chromium"
        )
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        raise CheckError(
            f"headless Chromium is required for the book checks and is not installed; not root, so it cannot be installed here: run `sudo sh -c '{how}'` or set CHROMIUM=/path/to/chromium"
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
            if proc.returncode != 0:
                raise CheckError(
                    f"headless Chromium is required for the book checks and `{' '.join(cmd)}` failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
                )
    except subprocess.TimeoutExpired:
        raise CheckError(f"installing chromium with `{how}` took more than 15 minutes") from None
    found = shutil.which("chromium")
    if not found:
        raise CheckError(f"`{how}` succeeded but no `chromium` executable is on PATH")
    return found


class Tab:
    """One page target of the browser, driven over its own DevTools websocket (``Browser.tab()``)."""

    def __init__(self, ws):
        self.ws = ws
        self.next_id = 0
        self.events: list[dict] = []

    def _receive(self, deadline: float) -> dict:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        return json.loads(self.ws.recv(timeout=remaining))

    def call(self, method: str, timeout: float = 60, **params) -> dict:
        self.next_id += 1
        call_id = self.next_id
        self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            try:
                msg = self._receive(deadline)
            except TimeoutError:
                raise CheckError(f"Chromium did not answer {method} within {timeout} s") from None
            if msg.get("id") == call_id:
                if "error" in msg:
                    raise CheckError(f"Chromium: {method} failed: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def wait_for(self, event: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for msg in self.events[seen:]:
                if msg["method"] == event:
                    return msg
            seen = len(self.events)
            try:
                msg = self._receive(deadline)
            except TimeoutError:
                raise CheckError(f"no {event} within {timeout} s") from None
            if "method" in msg:
                self.events.append(msg)

    def evaluate(self, expression: str, timeout: float = 60):
        result = self.call(
            "Runtime.evaluate", timeout=timeout, expression=expression, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise CheckError(f"page script failed: {details.get('exception', {}).get('description') or details}")
        return result["result"].get("value")


class Browser:
    """A headless Chromium with its DevTools port open on 127.0.0.1; one Tab per page."""

    def __init__(self, exe: str):
        self.profile = tempfile.mkdtemp(prefix="iql-chromium-profile-")
        self.log = open(Path(self.profile) / "chromium.log", "wb")
        cmd = [exe, *CHROMIUM_FLAGS, "--remote-debugging-port=0", f"--user-data-dir={self.profile}", "about:blank"]
        self.proc = subprocess.Popen(
            cmd, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise CheckError(f"Chromium did not start (exit {self.proc.returncode}): {' '.join(cmd)}")
            time.sleep(0.1)
        self.port = int(port_file.read_text().split()[0])

    def _http(self, path: str, method: str = "GET") -> bytes:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method)
        with self._opener.open(request, timeout=30) as response:
            return response.read()

    @contextlib.contextmanager
    def tab(self):
        """A new tab (page target) and its websocket, both closed on exit."""
        from websockets.sync.client import connect

        target = json.loads(self._http("/json/new?about:blank", method="PUT"))
        try:
            with connect(target["webSocketDebuggerUrl"], max_size=None, open_timeout=30, proxy=None) as ws:
                yield Tab(ws)
        finally:
            try:
                self._http(f"/json/close/{target['id']}")
            except OSError:
                pass  # the browser is closed at the end anyway

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        try:  # leftovers of this Chromium only (its renderer and GPU processes): its own group
            os.killpg(self.proc.pid, 9)
        except (ProcessLookupError, PermissionError):
            pass
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# Runs in the page after its load event: MathJax's first typesetting (MathJax 3's startup
# promise), then the web fonts. Returns MathJax's state.
WAIT_JS = """
(async () => {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const timeout = (ms) => sleep(ms).then(() => "timeout");
  let state = "absent";
  for (let i = 0; i < 20; i++) {  // async scripts: give MathJax a moment to define its startup
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) break;
    await sleep(50);
  }
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    state = await Promise.race([MathJax.startup.promise.then(() => "typeset", (e) => "error: " + e), timeout(MATHJAX_TIMEOUT_MS)]);
  }
  await Promise.race([document.fonts.ready, timeout(10000)]);
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  return state;
})()
""".replace("MATHJAX_TIMEOUT_MS", str(MATHJAX_TIMEOUT_S * 1000))

# Opens collapsed content, measures every <pre> of the page (code cells and the prose's code blocks)
# and how many characters fit on one line of a code cell's input, and returns the DOM.
MEASURE_JS = """
(async () => {
  // code cells as a reader first sees the page: collapsed toggles (hide-input, hide-cell) closed
  const article = document.querySelector("article.bd-article") || document.querySelector("article") || document.body;
  const collapsed = (el) => {
    for (let p = el; p; p = p.parentElement) if (p.tagName === "DETAILS" && !p.open) return true;
    return el.getClientRects().length === 0;
  };
  const codeLines = (pre) => pre.textContent.split("\\n").filter((l) => l.trim() !== "").length;
  const cells = [];
  let codeHeight = 0;
  for (const input of article.querySelectorAll("div.cell div.cell_input")) {
    const pre = input.querySelector("pre");
    if (!pre) continue;
    const hidden = collapsed(input);
    const lines = codeLines(pre);
    if (!hidden) codeHeight += input.getBoundingClientRect().height;
    cells.push({hidden, lines, first: (pre.textContent.split("\\n").find((l) => l.trim() !== "") || "").slice(0, 80)});
  }
  const articleHeight = article.getBoundingClientRect().height;
  for (const d of document.querySelectorAll("details")) d.open = true;
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  const overflow = [];
  for (const pre of document.querySelectorAll("article pre")) {
    if (pre.scrollWidth > pre.clientWidth) {
      const lines = pre.textContent.split("\\n");
      const longest = lines.reduce((a, b) => (b.length > a.length ? b : a), "");
      overflow.push({
        where: pre.closest(".cell_output") ? "output" : pre.closest("div.cell") ? "input" : "block",
        scrollWidth: pre.scrollWidth, clientWidth: pre.clientWidth,
        longest: longest.length, line: longest.slice(0, 100),
      });
    }
  }
  // display equations wider than the text column (MathJax centres them, so both ends are cut)
  const wideMath = [];
  for (const c of document.querySelectorAll('mjx-container[display="true"]')) {
    const math = c.querySelector("mjx-math");
    const box = c.parentElement;
    if (math && box && math.getBoundingClientRect().width > box.clientWidth + 1) {
      wideMath.push({width: Math.round(math.getBoundingClientRect().width), column: box.clientWidth,
                     text: (c.getAttribute("aria-label") || c.textContent || "").slice(0, 80)});
    }
  }
  let columns = null, charWidth = null, textWidth = null;
  const pre = document.querySelector("div.cell div.cell_input pre");
  if (pre && pre.clientWidth > 0) {
    const probe = document.createElement("span");
    probe.textContent = "x".repeat(200);
    pre.appendChild(probe);
    charWidth = probe.getBoundingClientRect().width / 200;
    probe.remove();
    const style = getComputedStyle(pre);
    textWidth = pre.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    columns = Math.floor(textWidth / charWidth + 1e-6);
  }
  // tables wider than the text column (cut at its edge, or scrolled sideways in a wrapper)
  const wideTables = [];
  const column = article.getBoundingClientRect();
  for (const t of article.querySelectorAll("table")) {
    const box = t.getBoundingClientRect();
    if (box.width === 0) continue;
    let scroller = null;
    for (let p = t.parentElement; p && p !== article; p = p.parentElement) {
      if (p.scrollWidth > p.clientWidth + 1 && getComputedStyle(p).overflowX !== "visible") { scroller = p; break; }
    }
    if (scroller || box.right > column.right + 1 || box.left < column.left - 1) {
      const row = t.querySelector("tr");
      wideTables.push({width: Math.round(Math.max(box.width, t.scrollWidth)),
                       column: Math.round(scroller ? scroller.clientWidth : column.width),
                       text: ((row && row.textContent) || t.textContent || "").replace(/\\s+/g, " ").trim().slice(0, 80)});
    }
  }
  // images: displayed width against natural width (collapsed content is open by now)
  const images = [];
  for (const img of article.querySelectorAll("img")) {
    if (!img.naturalWidth) continue;
    images.push({src: img.getAttribute("src") || "", natural: img.naturalWidth,
                 displayed: img.getBoundingClientRect().width,
                 output: !!img.closest(".cell_output")});
  }
  // videos and animated images (issue 28): does each load, what text alternative, does it fit the column
  const media = [];
  const columnWidth = article.getBoundingClientRect().width;
  for (const v of article.querySelectorAll("video")) {
    if (v.readyState < 1 && !v.error) {  // wait (a little) for its metadata: it loads, or it fails
      await Promise.race([new Promise((r) => { v.addEventListener("loadedmetadata", r, {once: true});
                                               v.addEventListener("error", r, {once: true}); }),
                          new Promise((r) => setTimeout(r, MEDIA_TIMEOUT_MS))]);
    }
    const sources = [v.getAttribute("src"), ...[...v.querySelectorAll("source")].map((s) => s.getAttribute("src"))]
      .filter((u) => u);
    media.push({kind: "video", sources, poster: v.getAttribute("poster") || "",
                label: (v.getAttribute("aria-label") || v.getAttribute("title") || "").trim(),
                fallback: (v.textContent || "").trim(), width: v.getBoundingClientRect().width, column: columnWidth,
                readyState: v.readyState, error: v.error ? v.error.code : null, natural: v.videoWidth});
  }
  for (const img of article.querySelectorAll("img")) {
    const src = img.getAttribute("src") || "";
    if (!(src.toLowerCase().endsWith(".gif") || src.startsWith("data:image/gif"))) continue;
    media.push({kind: "animated image", sources: [src], poster: "", label: (img.getAttribute("alt") || "").trim(),
                fallback: "", width: img.getBoundingClientRect().width, column: columnWidth,
                readyState: img.complete && img.naturalWidth ? 4 : 0, error: null, natural: img.naturalWidth});
  }
  return {overflow, wideMath, columns, charWidth, textWidth, cells, codeHeight, articleHeight, wideTables,
          images, media, html: document.documentElement.outerHTML};
})()
""".replace("MEDIA_TIMEOUT_MS", str(MEDIA_TIMEOUT_S * 1000))


# --------------------------------------------------------------------------------------------
# checks on one page


@dataclass
class PageReport:
    docname: str
    screenshot: Path
    math_expected: int = 0
    math_rendered: int = 0
    figures_expected: int = 0
    output_images: int = 0
    local_links: int = 0
    code_columns: int | None = None
    visible_code_lines: int = 0
    collapsed_code_lines: int = 0
    removed_code_lines: int = 0
    longest_visible_cell: int = 0
    code_share: float | None = None  # visible code inputs' height / the article's height
    problems: list[str] = field(default_factory=list)


def _resolve(page: Path, url: str) -> tuple[str, Path | None]:
    """('local', path) | ('data', None) | ('remote', None) for a URL found on ``page``."""
    full = urljoin(page.as_uri(), url)
    parsed = urlparse(full)
    if parsed.scheme == "data":
        return "data", None
    if parsed.scheme == "file":
        return "local", Path(unquote(parsed.path))
    return "remote", None


def _is_prose(text) -> bool:
    return not any(
        parent.name in NON_PROSE_TAGS or "highlight" in (parent.get("class") or []) for parent in text.parents
    )


def raw_tex(soup: BeautifulSoup) -> list[str]:
    """Visible prose (outside code and typeset math) holding TeX delimiters or a ``$``."""
    found: dict[int, str] = {}  # one entry per element, however many of its text nodes hold TeX
    body = soup.body or soup
    for text in body.find_all(string=True):
        if any(marker in text for marker in RAW_TEX_MARKERS) and _is_prose(text):
            found.setdefault(id(text.parent), " ".join(text.parent.get_text().split())[:160])
    return list(found.values())


def math_in_code_blocks(soup: BeautifulSoup) -> list[str]:
    """Code blocks in the prose (not in a code cell) holding display math: an equation indented
    so far that Markdown made it an indented code block."""
    found = []
    for pre in soup.find_all("pre"):
        if pre.find_parent(class_="cell") is not None:
            continue
        block = pre.find_parent(class_=re.compile(r"^highlight-"))
        if block is not None and set(TEX_SOURCE_LANGUAGES) & set(block.get("class") or []):
            continue
        text = pre.get_text()
        if "$$" in text or "\\begin{" in text:
            found.append(" ".join(text.split())[:120])
    return found


class _Ids:
    """The ids (and a names) of the HTML files of the book, read once each."""

    def __init__(self):
        self.cache: dict[Path, set[str]] = {}
        self.lock = threading.Lock()

    @staticmethod
    def of(soup: BeautifulSoup) -> set[str]:
        ids = {el["id"] for el in soup.find_all(id=True)}
        return ids | {el["name"] for el in soup.find_all("a", attrs={"name": True})}

    def __call__(self, path: Path) -> set[str]:
        with self.lock:
            if path not in self.cache:
                self.cache[path] = self.of(
                    BeautifulSoup(path.read_text(encoding="utf-8", errors="replace"), "html.parser")
                )
            return self.cache[path]


_IDS = _Ids()


def check_links(dom: BeautifulSoup, page: Path, html: Path, placeholder: str | None = None) -> tuple[int, list[str]]:
    """Every ``a href`` to a local file or anchor resolves, inside the built book; nothing links
    to the ``placeholder`` repository (``owner/name``)."""
    problems = []
    own_ids = _Ids.of(dom)
    root = html.resolve()
    checked = 0
    for a in dom.find_all("a", href=True):
        href = a["href"].strip()
        if placeholder and f"/{placeholder}" in href:
            problems.append(
                f"link to {href[:100]}: {placeholder} is _config.yml's placeholder repository (its buttons are off)"
            )
            continue
        if not href or href == "#" or href.startswith(("javascript:", "mailto:")):
            continue
        full = urlparse(urljoin(page.as_uri(), href))
        if full.scheme != "file":
            continue
        checked += 1
        target = Path(unquote(full.path))
        label = " ".join(a.get_text().split())[:40] or a.get("title") or a.get("class")
        if target.is_dir():
            target = target / "index.html"
        if not target.exists():
            problems.append(f"broken link {href!r} ({label!r}): {target} does not exist")
            continue
        if not target.resolve().is_relative_to(root):
            problems.append(f"link {href!r} ({label!r}) leaves the built book: {target}")
            continue
        fragment = unquote(full.fragment)
        if fragment and target.suffix == ".html":
            ids = own_ids if target.resolve() == page.resolve() else _IDS(target)
            if fragment not in ids:
                problems.append(f"broken link {href!r} ({label!r}): no id {fragment!r} in {target.name}")
    return checked, problems


def check_outputs(dom: BeautifulSoup) -> list[str]:
    """Progress bars as a line or three, never as a log of refreshes; no ipywidgets boxes."""
    problems = []
    for pre in dom.select(".cell_output pre"):
        lines = [line for line in pre.get_text().splitlines() if PROGRESS_LINE.search(line)]
        bars = [PROGRESS_LINE.split(line, 1)[0].strip() for line in lines]  # a bar's description
        pcts = [int(m.group(1)) for m in (re.search(r"(\d{1,3})%\|", line) for line in lines) if m]
        # a refresh log: a bar shown again after a line that was not its final state (two
        # finished loops with the same description each leave their own 100% line, which is fine)
        repeated = sorted({b for i, b in enumerate(bars) if b in bars[i + 1 :] and pcts[i] < 100})
        if repeated or len(lines) > MAX_PROGRESS_LINES:
            why = (
                f"bar {repeated[0]!r} shows {bars.count(repeated[0])} lines (one final line each)"
                if repeated
                else (f"{len(lines)} progress-bar lines (at most {MAX_PROGRESS_LINES})")
            )
            problems.append(
                f"an output block has a progress log: {why}: {lines[0].strip()[:80]!r} ... {lines[-1].strip()[:80]!r}"
            )
    timed = [m.group(0) for pre in dom.select(".cell_output pre") if (m := TIMING_TEXT.search(pre.get_text()))]
    if timed:
        problems.append(
            f"{len(timed)} outputs show a timing ({timed[0]!r}: a progress bar's elapsed time or rate differs on "
            "every build): execute the book with IQL_PROGRESS=final and PYTHONSTARTUP=tools/book_kernel_startup.py, "
            "or print no time"
        )
    widgets = dom.select('script[type="application/vnd.jupyter.widget-view+json"], .cell_output .jupyter-widgets')
    widget_text = [pre for pre in dom.select(".cell_output pre") if WIDGET_TEXT.search(pre.get_text())]
    if widgets or widget_text:
        problems.append(
            f"{len(widgets) + len(widget_text)} ipywidgets outputs (empty boxes or widget reprs in a static page): execute the book with IQL_PROGRESS=final and PYTHONSTARTUP=tools/book_kernel_startup.py"
        )
    return problems


def code_line_limit(docname: str) -> int | None:
    """The most visible code lines ``docname`` may show (``CODE_LINE_LIMITS``); None: no limit."""
    for pattern, limit in CODE_LINE_LIMITS:
        if pattern.search(docname):
            return limit
    return None


def _nonblank_lines(text: str) -> int:
    return sum(1 for line in text.splitlines() if line.strip())


def removed_code_lines(nb: nbformat.NotebookNode | None) -> int:
    """Lines of code the page does not show at all (cells tagged remove-cell or remove-input)."""
    if nb is None:
        return 0
    return sum(
        _nonblank_lines(c.source)
        for c in nb.cells
        if c.cell_type == "code" and REMOVE_INPUT_TAGS & set(c.metadata.get("tags", []))
    )


def check_code_lines(report: PageReport, measured: dict) -> list[str]:
    """Item 1: the visible code of a page within its limit, no visible cell over
    ``MAX_VISIBLE_CELL_LINES`` lines. Fills the report's code figures."""
    cells = measured.get("cells", [])
    visible = [c for c in cells if not c["hidden"]]
    report.visible_code_lines = sum(c["lines"] for c in visible)
    report.collapsed_code_lines = sum(c["lines"] for c in cells if c["hidden"])
    report.longest_visible_cell = max((c["lines"] for c in visible), default=0)
    height = measured.get("articleHeight") or 0
    report.code_share = measured.get("codeHeight", 0) / height if height else None
    problems = []
    limit = code_line_limit(report.docname)
    if limit is not None and report.visible_code_lines > limit:
        problems.append(
            f"{report.visible_code_lines} visible code lines (at most {limit} on this page): hide setup, plotting "
            "and glue behind cell tags (remove-cell, remove-input, hide-input) or move helpers into the package"
        )
    for c in visible:
        if c["lines"] > MAX_VISIBLE_CELL_LINES:
            problems.append(
                f"a visible code cell of {c['lines']} lines (at most {MAX_VISIBLE_CELL_LINES}): {c['first']!r}"
            )
    return problems


def png_info(data: bytes) -> tuple[float | None, dict[str, str]]:
    """(dots per inch from the pHYs chunk or None, the tEXt chunks) of a PNG file's bytes."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None, {}
    dpi, texts, pos = None, {}, 8
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"pHYs" and len(body) == 9 and body[8] == 1:  # unit 1: pixels per metre
            dpi = int.from_bytes(body[0:4], "big") * 0.0254
        elif kind == b"tEXt" and b"\0" in body:
            key, value = body.split(b"\0", 1)
            texts[key.decode("latin-1")] = value.decode("latin-1")
        elif kind == b"IEND":
            break
        pos += 12 + length
    return dpi, texts


def _image_bytes(page: Path, url: str) -> bytes | None:
    kind, path = _resolve(page, url)
    if kind == "local" and path is not None and path.is_file():
        return path.read_bytes()
    if kind == "data" and ";base64," in url[:80]:
        return base64.b64decode(url.split(",", 1)[1])
    return None


def check_figures(page: Path, measured: dict) -> list[str]:
    """Item 5: every image shown at no less than ``MIN_FIGURE_SCALE`` of its natural width, and the
    smallest text of every Matplotlib figure at least ``MIN_DISPLAYED_FONT_PT`` as displayed.

    How the text size is measured: a font of ``s`` points in a figure saved at ``dpi`` is ``s * dpi
    / 72`` pixels tall in the PNG; the browser shows the PNG at ``scale`` = displayed width / natural
    width, so the text is ``s * dpi / 72 * scale`` CSS pixels, i.e. ``s * dpi * scale / 96`` points
    (a CSS pixel is 0.75 pt). ``dpi`` is the PNG's pHYs chunk (Matplotlib writes the dpi it saved
    at); ``s`` is the smallest font size of the text Matplotlib actually drew into that figure
    (titles, labels, tick labels, legends, annotations), which tools/book_kernel_startup.py records
    into the PNG's tEXt chunk ``FONT_RECORD_KEY`` while the book executes. A Matplotlib PNG without
    that record fails (the book was executed without the start-up file, so its text is unmeasured);
    other images (a diagram in the prose) are held to the scale rule only. The scale is measured
    in the browser after collapsed content is opened, at the checker's window width.
    """
    problems = []
    for img in measured.get("images", []):
        natural, displayed, src = img["natural"], img["displayed"], img["src"]
        name = src.rsplit("/", 1)[-1][:60] if not src.startswith("data:") else "an inline image"
        scale = displayed / natural if natural else 1.0
        if natural >= 100 and scale < MIN_FIGURE_SCALE:
            problems.append(
                f"figure {name} is shown at {scale:.2f} of its natural width ({displayed:.0f} of {natural} px; "
                f"at least {MIN_FIGURE_SCALE}): make it narrower (figsize) for the column"
            )
        data = _image_bytes(page, src)
        if data is None:
            continue
        dpi, texts = png_info(data)
        if "matplotlib" not in texts.get("Software", "").lower():
            continue
        record = texts.get(FONT_RECORD_KEY)
        if record is None or dpi is None:
            problems.append(
                f"figure {name}: no record of its font sizes ({FONT_RECORD_KEY!r}) or dpi in the PNG: execute the "
                "book with PYTHONSTARTUP=tools/book_kernel_startup.py"
            )
            continue
        if record == "none":  # a figure without text
            continue
        shown_pt = float(record) * dpi * min(scale, 10.0) / 96
        if shown_pt < MIN_DISPLAYED_FONT_PT - 1e-6:
            problems.append(
                f"figure {name}: its smallest text ({float(record):g} pt at {dpi:.0f} dpi, shown at {scale:.2f}) is "
                f"{shown_pt:.1f} pt on the page (at least {MIN_DISPLAYED_FONT_PT:g}): larger fonts or a smaller figsize"
            )
    return problems


def check_media(page: Path, measured: dict) -> list[str]:
    """Issue 28: every video and animated image (GIF) on the page loads from the page itself or a
    local file (never the network), has a text alternative (a video's ``aria-label``, ``title`` or
    fallback text; an image's ``alt``), and fits the text column. A video "loads" when the browser
    read its metadata (``readyState >= 1``, no ``error``); a poster, when given, is local too."""
    problems = []
    for m in measured.get("media", []):
        what = m["kind"]
        name = next((u.rsplit("/", 1)[-1][:60] for u in m["sources"] if not u.startswith("data:")), "inline")
        if not m["sources"]:
            problems.append(f"a {what} with no source")
        for url in [*m["sources"], *([m["poster"]] if m["poster"] else [])]:
            kind, path = _resolve(page, url)
            if kind == "remote":
                problems.append(
                    f"a {what} loads {url[:100]} from the network: write the file beside the page or embed it"
                )
            elif kind == "local" and (path is None or not path.is_file() or path.stat().st_size == 0):
                problems.append(f"a {what} points at {url[:100]}, which is missing on disk")
        if m["sources"] and (m["error"] is not None or m["readyState"] < 1):
            problems.append(f"the {what} {name} does not load in the browser (readyState {m['readyState']}, "
                            f"error {m['error']}): a local H.264 mp4 (yuv420p) or a GIF plays everywhere")  # fmt: skip
        if not m["label"] and not m["fallback"]:
            fix = "an aria-label (video_html's alt)" if what == "video" else "an alt text"
            problems.append(f"the {what} {name} has no text alternative: give it {fix}")
        if m["width"] > m["column"] + 1:
            problems.append(f"the {what} {name} is wider than the column ({m['width']:.0f} > {m['column']:.0f} px): "
                            "style it max-width: 100%")  # fmt: skip
    return problems


def check_tables(measured: dict) -> list[str]:
    """Item 5: no table wider than the text column (cut at its edge or scrolled sideways)."""
    return [
        f"a table is wider than the column ({t['width']} > {t['column']} px; cut or scrolled sideways): "
        f"{t['text']!r}; trim it, split it, or make it a figure"
        for t in measured.get("wideTables", [])
    ]


def is_progress_line(line: str) -> bool:
    """A progress bar's line: tqdm's ``NN%|`` or the book's final line (``FINAL_PROGRESS_LINE``)."""
    return bool(PROGRESS_LINE.search(line) or FINAL_PROGRESS_LINE.match(line.strip()))


def check_output_text(dom: BeautifulSoup) -> list[str]:
    """Item 5: no warning in an output (stderr that is not a progress bar's final line, or a line
    matching ``WARNING_TEXT`` in any output), and no log line twice in one output block."""
    problems = []
    for out in dom.select(".cell_output .output"):
        pre = out.find("pre") if out.name != "pre" else out
        if pre is None:
            continue
        lines = [line.strip() for line in ANSI.sub("", pre.get_text()).splitlines() if line.strip()]
        noise = []
        if "stderr" in (out.get("class") or []):
            noise = [line for line in lines if not is_progress_line(line)]
            if noise:
                problems.append(
                    f"stderr in an output ({len(noise)} lines that are not a progress bar): {noise[0][:100]!r}; "
                    "fix the cause, or print what the reader needs to stdout"
                )
        warned = [line for line in lines if WARNING_TEXT.search(line)]
        if warned and not noise:  # a warning on stderr is reported once, above
            problems.append(f"warning text in an output: {warned[0][:100]!r}; fix its cause")
        seen: dict[str, int] = {}
        for line in lines:
            if len(line) >= MIN_REPEATED_LINE_CHARS and re.search(r"[A-Za-z]{2}", line):
                if not is_progress_line(line):
                    seen[line] = seen.get(line, 0) + 1
        repeated = [(n, line) for line, n in seen.items() if n > 1]
        if repeated:
            n, line = max(repeated)
            problems.append(f"a log line repeated {n} times in one output: {line[:100]!r}; print it once")
    return problems


def glued_words(text_plain: str) -> tuple[str, int] | None:
    """(the string, its word count) when a glued output's ``text/plain`` is a string's repr;
    None for numbers and other objects."""
    import ast

    text = text_plain.strip()
    if not text or text[0] not in "'\"":
        return None
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return None
    if not isinstance(value, str):
        return None
    return value, sum(1 for word in value.split() if re.search(r"[A-Za-z]", word))


def long_glued_strings(nb: nbformat.NotebookNode | None, max_words: int = MAX_GLUED_WORDS) -> list[str]:
    """Item 3: the glued strings of an executed notebook with more than ``max_words`` words (a
    word: a whitespace-separated token with a letter; numbers and units like ``0.35 s`` count
    as one). Read from the executed notebook's glue outputs (MyST-NB stores each glued value as an
    output with ``scrapbook`` metadata; a string's ``text/plain`` is its repr), so a sentence built
    any way (f-string, join, if/else) is caught, as the build produced it."""
    found = []
    for cell in nb.cells if nb is not None else []:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            meta = output.get("metadata", {}).get("scrapbook")
            if not meta:
                continue
            prefix = meta.get("mime_prefix") or ""
            data = {k.removeprefix(prefix): v for k, v in output.get("data", {}).items()}
            if set(data) != {"text/plain"}:
                continue
            words = glued_words(data["text/plain"])
            if words and words[1] > max_words:
                found.append(f"{meta.get('name')!r} ({words[1]} words): {words[0][:100]!r}")
    return found


def _load(tab: Tab, page: Path, screenshot: Path) -> tuple[dict, str, list[str]]:
    """Open ``page``, wait for MathJax and the fonts, save a screenshot, measure; returns the
    measurements (with the DOM), MathJax's state and every URL the page requested."""
    for domain in ("Page", "Network", "Runtime"):
        tab.call(f"{domain}.enable")
    tab.call(
        "Emulation.setDeviceMetricsOverride",
        width=WINDOW_WIDTH,
        height=WINDOW_HEIGHT,
        deviceScaleFactor=1,
        mobile=False,
    )
    tab.events.clear()
    tab.call("Page.navigate", url=page.as_uri())
    tab.wait_for("Page.loadEventFired", PAGE_TIMEOUT_S)
    mathjax_state = tab.evaluate(WAIT_JS, timeout=max(MATHJAX_TIMEOUT_S + 30, PAGE_TIMEOUT_S))
    shot = tab.call("Page.captureScreenshot", format="png")
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    screenshot.write_bytes(base64.b64decode(shot["data"]))
    measured = tab.evaluate(MEASURE_JS, timeout=PAGE_TIMEOUT_S)
    requests = [e["params"]["request"]["url"] for e in tab.events if e["method"] == "Network.requestWillBeSent"]
    return measured, mathjax_state, requests


def check_page(browser: Browser, src: Path, html: Path, docname: str, shots: Path) -> PageReport:
    page = html / f"{docname}.html"
    report = PageReport(docname, shots / f"{docname.replace('/', '__')}.png")
    if not page.exists():
        report.problems.append(f"{page} was not built")
        return report
    static = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
    report.math_expected = len(static.select(".math"))
    nb = executed_notebook(src, html.parent, docname)
    from_notebook = figure_outputs(nb) if nb is not None else 0
    report.figures_expected = max(from_notebook, len(static.select(".cell_output img")))

    try:
        with browser.tab() as tab:
            measured, mathjax_state, requests = _load(tab, page, report.screenshot)
    except Exception as exc:  # a page the browser cannot render fails; the run goes on
        report.problems.append(f"Chromium failed on {page}: {exc}")
        return report
    dom = BeautifulSoup(measured["html"], "html.parser")
    if not report.screenshot.exists() or report.screenshot.stat().st_size == 0:
        report.problems.append("no screenshot was written")

    # nothing is loaded from the network: the book must read offline
    remote = sorted({u for u in requests if urlparse(u).scheme not in ("file", "data", "about", "blob", "")})
    if remote:
        report.problems.append(f"{len(remote)} requests to the network, e.g. {remote[:3]}")
    for tag, attr in (("script", "src"), ("img", "src"), ("link", "href")):
        for el in dom.find_all(tag):
            url = el.get(attr)
            if not url or (tag == "link" and "stylesheet" not in (el.get("rel") or [])):
                continue
            kind, path = _resolve(page, url)
            if kind == "remote":
                report.problems.append(f"<{tag}> loads {url} from the network")
            elif kind == "local" and tag != "img" and not path.exists():
                report.problems.append(f"<{tag}> points at {url}, which does not exist")

    # math: typeset by a local MathJax, no raw TeX left in the prose
    math_elements = dom.select(".math")
    report.math_rendered = sum(1 for el in math_elements if el.find("mjx-container"))
    if report.math_expected:
        mathjax = [s.get("src") for s in dom.find_all("script") if "mathjax" in (s.get("src") or "").lower()]
        if not mathjax:
            report.problems.append("the page has math but loads no MathJax")
        for url in mathjax:
            kind, path = _resolve(page, url)
            if kind != "local" or not path.exists():
                report.problems.append(f"MathJax is not served by the book: {url}")
        if len(math_elements) < report.math_expected or report.math_rendered < report.math_expected:
            report.problems.append(
                f"math not rendered by MathJax ({mathjax_state}): {report.math_rendered} of {report.math_expected} math elements have an mjx-container"
            )
    errors = dom.find_all("mjx-merror") + dom.select("[data-mjx-error]")
    if errors:
        report.problems.append(
            f"{len(errors)} MathJax errors, e.g. {errors[0].get('data-mjx-error') or errors[0].get_text()[:120]!r}"
        )
    raw = raw_tex(dom)
    if raw:
        report.problems.append(f"raw TeX left in the prose ({len(raw)}): {raw[:3]}")
    in_code = math_in_code_blocks(dom)
    if in_code:
        report.problems.append(
            f"display math rendered as a code block (indented too deeply?) ({len(in_code)}): {in_code[:3]}"
        )

    # images: every one resolves to a file; every figure output of the notebook is shown
    for img in dom.find_all("img"):
        url = (img.get("src") or "").strip()
        if not url:
            report.problems.append(f"<img> without src: {str(img)[:120]}")
            continue
        kind, path = _resolve(page, url)
        if kind == "local" and (not path.is_file() or path.stat().st_size == 0):
            report.problems.append(f"image {url} is missing on disk ({path})")
        elif kind == "data" and len(url.split(",", 1)[-1]) < 16:
            report.problems.append(f"image with an empty data: URL: {url[:60]}")
    report.output_images = sum(1 for img in dom.select(".cell_output img") if (img.get("src") or "").strip())
    if report.output_images < report.figures_expected:
        report.problems.append(
            f"{report.figures_expected} figures in the executed notebook, {report.output_images} shown in the page's cell outputs"
        )

    # code cells: outputs without progress logs or widgets, nothing that scrolls sideways
    report.problems.extend(check_outputs(dom))
    report.code_columns = measured["columns"]
    for o in measured["overflow"]:
        what = "a code block in the prose" if o["where"] == "block" else f"a code cell's {o['where']}"
        report.problems.append(
            f"{what} scrolls horizontally ({o['scrollWidth']} > {o['clientWidth']} px; "
            f"longest line {o['longest']} characters, {report.code_columns} fit): {o['line']!r}"
        )

    for m in measured.get("wideMath", []):
        report.problems.append(
            f"a display equation is wider than the text column ({m['width']} > {m['column']} px; it is cut off): "
            f"{m['text']!r}; break it over lines (aligned) or move part of it into the text"
        )

    # links
    report.local_links, link_problems = check_links(dom, page, html, placeholder_repository(src))
    report.problems.extend(link_problems)

    # issue 22: the code a reader sees, figures and tables at the column's width, clean outputs,
    # glued values that are not sentences
    report.removed_code_lines = removed_code_lines(nb)
    report.problems.extend(check_code_lines(report, measured))
    report.problems.extend(check_figures(page, measured))
    report.problems.extend(check_tables(measured))
    report.problems.extend(check_media(page, measured))
    report.problems.extend(check_output_text(dom))
    report.problems.extend(
        f"a glued string longer than {MAX_GLUED_WORDS} words (write the sentence in the Markdown, glue only "
        f"its numbers and labels): {g}"
        for g in long_glued_strings(executed_notebook(src, html.parent, docname, glue=True))
    )
    return report


def check_pages(browser: Browser, src: Path, html: Path, docnames: list[str], shots: Path) -> dict[str, PageReport]:
    with concurrent.futures.ThreadPoolExecutor(max_workers=BROWSER_WORKERS) as pool:
        futures = {d: pool.submit(check_page, browser, src, html, d, shots) for d in docnames}
        return {d: f.result() for d, f in futures.items()}


def code_columns(reports: dict[str, PageReport]) -> int | None:
    """Characters that fit on one line of a code cell: the narrowest page with code cells."""
    columns = [r.code_columns for r in reports.values() if r.code_columns]
    return min(columns) if columns else None


def summary(reports: dict[str, PageReport]) -> str:
    lines = []
    for r in reports.values():
        status = "OK" if not r.problems else "FAIL"
        lines.append(
            f"{status:4} {r.docname}: math {r.math_rendered}/{r.math_expected}, figures {r.output_images}/{r.figures_expected}, "
            f"local links {r.local_links}, code columns {r.code_columns}, visible code lines "
            f"{r.visible_code_lines}, screenshot {r.screenshot}"
        )
        lines.extend(f"       - {p}" for p in r.problems)
    lines.append(f"code cells fit {code_columns(reports)} characters per line at a {WINDOW_WIDTH}px wide window")
    return "\n".join(lines)


def check_book(
    src: Path, html: Path, shots: Path | None = None, browser: Browser | None = None, only: list[str] | None = None
):
    """Every page of ``src``'s toc in the HTML folder ``html`` (or the pages ``only``); returns
    (reports, book-level problems)."""
    if not (html / "index.html").exists():
        raise CheckError(f"no index.html in {html}: build the book first")
    docnames = toc_docnames(src)
    if only:
        unknown = sorted(set(only) - set(docnames))
        if unknown:
            raise CheckError(f"not in the toc: {unknown}")
        docnames = [d for d in docnames if d in only]
    shots = shots or html.parent / "screenshots"
    if browser is None:
        with Browser(find_or_install_chromium()) as own:
            reports = check_pages(own, src, html, docnames, shots)
    else:
        reports = check_pages(browser, src, html, docnames, shots)
    problems = []
    if not any(r.math_expected for r in reports.values()):
        problems.append("no page has math: the MathJax checks checked nothing")
    not_executed = unexecuted_notebooks(src, html.parent, docnames)
    if not_executed:
        problems.append(f"notebooks that were not executed by the build: {not_executed}")
    return reports, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html", nargs="?", type=Path, default=REPO / "_build" / "html", help="the built HTML folder")
    parser.add_argument("--src", type=Path, default=REPO, help="the book's source root (with _toc.yml)")
    parser.add_argument("--screenshots", type=Path, default=None, help="default: HTML/../screenshots")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        reports, problems = check_book(args.src.resolve(), args.html.resolve(), args.screenshots)
    except CheckError as exc:
        print(f"check_book: {exc}", file=sys.stderr)
        return 2
    print(summary(reports))
    for problem in problems:
        print(f"FAIL {problem}")
    failed = [r.docname for r in reports.values() if r.problems]
    print(
        f"{len(reports)} pages checked in {time.monotonic() - started:.0f} s: "
        + (f"{len(failed)} failed: {failed}" if failed or problems else "all passed")
    )
    return 1 if failed or problems else 0


if __name__ == "__main__":
    sys.exit(main())
