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
- a ``pre`` of a code cell (input or output) or of a code block in the prose scrolls horizontally
  (``scrollWidth > clientWidth``);
- a display equation is wider than the text column (MathJax centres it, so both of its ends are cut);
- a local link (``a href`` to a file or an anchor) does not resolve: a missing file, a missing
  ``id``, or a target outside the built book;
- a link points at the repository of ``_config.yml`` while its repository and launch buttons are
  off: that URL is then a placeholder for a repository that does not exist yet (repository,
  issue, edit and Binder/Colab launch buttons all would link there; see ``placeholder_repository``).

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
PAGE_TIMEOUT_S = 120
MATHJAX_TIMEOUT_S = 60
BROWSER_WORKERS = 2
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
WIDGET_TEXT = re.compile(r"\b(?:HBox|VBox|FloatProgress|IntProgress|HTML)\(children=|\bFloatProgress\(value=")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


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


def executed_notebook(src: Path, build: Path, docname: str) -> nbformat.NotebookNode | None:
    """The notebook as executed for this build: myst-nb's copy in ``_build/jupyter_execute``,
    else the execution cache, else the source's stored outputs; None for plain Markdown pages."""
    executed = build / "jupyter_execute" / f"{docname}.ipynb"
    if executed.exists():
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
    return nbformat.read(source, as_version=4)


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
  return {overflow, wideMath, columns, charWidth, textWidth, html: document.documentElement.outerHTML};
})()
"""


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
    widgets = dom.select('script[type="application/vnd.jupyter.widget-view+json"], .cell_output .jupyter-widgets')
    widget_text = [pre for pre in dom.select(".cell_output pre") if WIDGET_TEXT.search(pre.get_text())]
    if widgets or widget_text:
        problems.append(
            f"{len(widgets) + len(widget_text)} ipywidgets outputs (empty boxes or widget reprs in a static page): execute the book with IQL_PROGRESS=final and PYTHONSTARTUP=tools/book_kernel_startup.py"
        )
    return problems


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
    mathjax_state = tab.evaluate(WAIT_JS, timeout=MATHJAX_TIMEOUT_S + 30)
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
            f"local links {r.local_links}, code columns {r.code_columns}, screenshot {r.screenshot}"
        )
        lines.extend(f"       - {p}" for p in r.problems)
    lines.append(f"code cells fit {code_columns(reports)} characters per line at a {WINDOW_WIDTH}px wide window")
    return "\n".join(lines)


def check_book(src: Path, html: Path, shots: Path | None = None, browser: Browser | None = None):
    """Every page of ``src``'s toc in the HTML folder ``html``; returns (reports, book-level problems)."""
    if not (html / "index.html").exists():
        raise CheckError(f"no index.html in {html}: build the book first")
    docnames = toc_docnames(src)
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
