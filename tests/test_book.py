"""Book checks: the Jupyter Book builds cleanly and every page renders in a real browser.

What is checked, in order:

1. Every chapter file under ``book/`` is listed in ``_toc.yml`` (a notebook missing from the toc is
   silently left out of the book, because ``only_build_toc_files`` is on).
2. The browser checker itself, on a throw-away copy of the book with a tiny notebook (one
   matplotlib figure, inline and display math): it must pass there, and must fail when the figure
   file, the figure element or the local MathJax is taken away.
3. The real book: ``jupyter-book build <repo> --path-output _build/book-test -W --keep-going``
   with ``IQL_QUICK=1`` (warnings are errors: broken references, missing files, a bad toc or a
   notebook that raises all fail the build). Then headless Chromium opens every page of the toc
   from ``file://``, runs its JavaScript (MathJax included), takes a screenshot (kept in
   ``_build/book-test/_build/screenshots``) and dumps the DOM, in which:

   - every math element was typeset by MathJax (``mjx-container`` inside it, no ``mjx-merror``),
     no raw ``$$``, ``\\(``, ``\\[`` or ``\\begin{`` is left in the visible text, and MathJax was
     served by the book itself (no script, stylesheet or image from the network);
   - every page whose executed notebook has figure outputs shows at least that many images in its
     cell outputs; every ``img`` has a non-empty ``src`` that exists on disk. Which pages have
     figures is read from the executed notebooks (``_build/jupyter_execute``), never hard-coded.

The real book is built into its own folder, from scratch every run, so quick-mode outputs never
land in the cache of ``make book`` and a stale cache cannot hide a broken notebook. Set
``IQL_BOOK_TEST_KEEP_CACHE=1`` to reuse that folder's execution cache between runs while iterating.
Chromium is Debian's ``chromium``; when it is missing the set-up installs it with apt-get, and when
that is impossible the tests fail (they never skip).
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import nbformat
import pytest
from bs4 import BeautifulSoup

pytestmark = pytest.mark.book

REPO = Path(__file__).resolve().parents[1]
BOOK_TEST_OUT = REPO / "_build" / "book-test"
BUILD_TIMEOUT_S = int(os.environ.get("IQL_BOOK_BUILD_TIMEOUT", "7200"))
PAGE_TIMEOUT_S = 120
BROWSER_WORKERS = 2

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1280,2400",
    # virtual time runs the page's scripts (MathJax typesetting) to completion before the dump
    "--virtual-time-budget=10000",
]

# Mime types myst-nb shows as an <img>, and those it prefers over an image when both are present.
IMAGE_MIMES = ("image/svg+xml", "image/png", "image/jpeg", "image/gif", "image/webp")
PREFERRED_OVER_IMAGES = ("application/vnd.jupyter.widget-view+json", "application/javascript", "text/html")
REMOVE_OUTPUT_TAGS = {"remove-cell", "remove_cell", "remove-output", "remove_output"}
SOURCE_SUFFIXES = (".ipynb", ".md", ".rst")
# Text inside these elements is code or already-typeset math, not prose.
NON_PROSE_TAGS = {"script", "style", "pre", "code", "textarea", "noscript", "template", "mjx-container"}
RAW_TEX_MARKERS = ("$$", "\\(", "\\)", "\\[", "\\]", "\\begin{")
# "$...$" around something TeX-like (a backslash, ^, _ or a brace): inline math left unparsed.
RAW_INLINE_DOLLARS = re.compile(r"\$[^$\n]*[\\^_{}][^$\n]*\$")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


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
    env = dict(os.environ, IQL_QUICK="1", PYDEVD_DISABLE_FILE_VALIDATION="1")
    env.setdefault("MINARI_DATASETS_PATH", str(REPO / "data"))
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
        return nbformat.read(executed, as_version=4)
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


# --------------------------------------------------------------------------------------------
# the browser


def find_or_install_chromium() -> str:
    """Debian's chromium; installed with apt-get when missing. Fails (never skips) otherwise."""
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    how = "apt-get update && apt-get install -y chromium"
    if not shutil.which("apt-get"):
        pytest.fail(
            f"headless Chromium is required for the book checks and apt-get is not available: install chromium (Debian: `{how}`) or set CHROMIUM=/path/to/chromium"
        )
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        pytest.fail(
            f"headless Chromium is required for the book checks and is not installed; not root, so it cannot be installed here: run `sudo sh -c '{how}'` or set CHROMIUM=/path/to/chromium"
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
            if proc.returncode != 0:
                pytest.fail(
                    f"headless Chromium is required for the book checks and `{' '.join(cmd)}` failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
                )
    except subprocess.TimeoutExpired:
        pytest.fail(f"installing chromium with `{how}` took more than 15 minutes")
    found = shutil.which("chromium")
    if not found:
        pytest.fail(f"`{how}` succeeded but no `chromium` executable is on PATH")
    return found


@pytest.fixture(scope="session")
def chromium() -> str:
    exe = find_or_install_chromium()
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "chrom" in proc.stdout.lower(), (
        f"{exe} --version failed: {proc.stdout} {proc.stderr}"
    )
    return exe


def render_page(chromium: str, page: Path, screenshot: Path) -> str:
    """Open ``page`` in headless Chromium, save a screenshot, return the DOM after its scripts ran."""
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="iql-chromium-profile-") as profile:
        cmd = [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--screenshot={screenshot}",
            "--dump-dom",
            page.as_uri(),
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            dom, err = proc.communicate(timeout=PAGE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise AssertionError(f"Chromium did not finish {page} within {PAGE_TIMEOUT_S} s") from None
        finally:
            try:  # leftovers of this Chromium only: the process group it was started in
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
    if proc.returncode != 0 or "<html" not in dom.lower():
        raise AssertionError(f"Chromium failed on {page} (exit {proc.returncode}):\n{err[-3000:]}")
    return dom


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


def _raw_tex(soup: BeautifulSoup) -> list[str]:
    found = []
    body = soup.body or soup
    for text in body.find_all(string=True):
        if not any(marker in text for marker in RAW_TEX_MARKERS) and not RAW_INLINE_DOLLARS.search(text):
            continue
        if any(parent.name in NON_PROSE_TAGS or "highlight" in (parent.get("class") or []) for parent in text.parents):
            continue
        found.append(" ".join(text.split())[:120])
    return found


def check_page(chromium: str, src: Path, html: Path, docname: str, shots: Path) -> PageReport:
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
        dom = BeautifulSoup(render_page(chromium, page, report.screenshot), "html.parser")
    except AssertionError as exc:
        report.problems.append(str(exc))
        return report
    if not report.screenshot.exists() or report.screenshot.stat().st_size == 0:
        report.problems.append("no screenshot was written")

    # nothing is loaded from the network: the book must read offline
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

    # math: typeset by a local MathJax
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
                f"math not rendered by MathJax: {report.math_rendered} of {report.math_expected} math elements have an mjx-container"
            )
    errors = dom.find_all("mjx-merror") + dom.select("[data-mjx-error]")
    if errors:
        report.problems.append(
            f"{len(errors)} MathJax errors, e.g. {errors[0].get('data-mjx-error') or errors[0].get_text()[:120]!r}"
        )
    raw = _raw_tex(dom)
    if raw:
        report.problems.append(f"raw TeX left in the page ({len(raw)}): {raw[:3]}")

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
    return report


def check_pages(chromium: str, src: Path, html: Path, docnames: list[str], shots: Path) -> dict[str, PageReport]:
    with concurrent.futures.ThreadPoolExecutor(max_workers=BROWSER_WORKERS) as pool:
        futures = {d: pool.submit(check_page, chromium, src, html, d, shots) for d in docnames}
        return {d: f.result() for d, f in futures.items()}


def summary(reports: dict[str, PageReport]) -> str:
    lines = []
    for r in reports.values():
        status = "OK" if not r.problems else "FAIL"
        lines.append(
            f"{status:4} {r.docname}: math {r.math_rendered}/{r.math_expected}, figures {r.output_images}/{r.figures_expected}, screenshot {r.screenshot}"
        )
        lines.extend(f"       - {p}" for p in r.problems)
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# the tests


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


TINY_NOTEBOOK_CODE = """\
import matplotlib.pyplot as plt
import numpy as np

u = np.linspace(-2, 2, 101)
fig, ax = plt.subplots(figsize=(4, 3))
ax.plot(u, np.abs(0.7 - (u < 0)) * u**2)
ax.set_title("expectile loss")
plt.show()
"""


@pytest.fixture(scope="module")
def tiny_book(tmp_path_factory) -> tuple[Path, Path]:
    """A copy of the book's configuration with the intro, the bibliography and a tiny notebook
    (one figure, inline and display math), built like the real one."""
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
              - file: book/bibliography
            """
        )
    )
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell(
            "# A tiny chapter\n\nThe expectile loss $L_2^\\tau(u) = |\\tau - \\mathbb{1}(u<0)|\\,u^2$ "
            "{cite:p}`newey1987expectile`:\n\n$$\n\\arg\\min_m \\mathbb{E}\\left[L_2^\\tau(y - m)\\right]\n$$"
        ),
        nbformat.v4.new_code_cell(TINY_NOTEBOOK_CODE),
    ]
    nbformat.write(nb, src / "book" / "tiny.ipynb")
    html = build_book(src, src / "out")
    return src, html


def test_browser_check_passes_on_a_tiny_book(chromium, tiny_book):
    src, html = tiny_book
    reports = check_pages(chromium, src, html, toc_docnames(src), html.parent / "screenshots")
    print(summary(reports))
    assert all(not r.problems for r in reports.values()), summary(reports)
    tiny = reports["book/tiny"]
    assert tiny.figures_expected == 1 and tiny.output_images == 1, summary(reports)
    assert tiny.math_expected >= 2 and tiny.math_rendered == tiny.math_expected, summary(reports)
    assert reports["book/intro"].figures_expected == 0


def test_browser_check_catches_a_missing_figure_file(chromium, tiny_book):
    src, html = tiny_book
    images = list((html / "_images").glob("*"))
    assert images, "the tiny notebook's figure was not written to _images"
    for image in images:
        image.unlink()
    report = check_page(chromium, src, html, "book/tiny", html.parent / "screenshots-negative")
    assert any("missing on disk" in p for p in report.problems), report.problems


def test_browser_check_catches_a_figure_missing_from_the_page(chromium, tiny_book):
    src, html = tiny_book
    page = html / "book" / "tiny.html"
    soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
    for img in soup.select(".cell_output img"):
        img.decompose()
    page.write_text(str(soup), encoding="utf-8")
    report = check_page(chromium, src, html, "book/tiny", html.parent / "screenshots-negative")
    assert report.figures_expected == 1, "the figure count must come from the executed notebook"
    assert any("figures in the executed notebook" in p for p in report.problems), report.problems


def test_browser_check_catches_math_left_unrendered(chromium, tiny_book):
    src, html = tiny_book
    mathjax = html / "_static" / "mathjax"
    assert mathjax.is_dir(), "MathJax was not copied into the book's _static folder"
    shutil.rmtree(mathjax)
    report = check_page(chromium, src, html, "book/intro", html.parent / "screenshots-negative")
    assert report.math_expected > 0 and report.math_rendered == 0, report
    assert any("not rendered" in p for p in report.problems), report.problems
    assert any("raw TeX" in p for p in report.problems), report.problems


@pytest.fixture(scope="module")
def real_book() -> Path:
    keep = os.environ.get("IQL_BOOK_TEST_KEEP_CACHE", "") not in ("", "0")
    return build_book(REPO, BOOK_TEST_OUT, keep_cache=keep)


def test_real_book_builds_and_renders(chromium, real_book):
    docnames = toc_docnames(REPO)
    reports = check_pages(chromium, REPO, real_book, docnames, real_book.parent / "screenshots")
    print(summary(reports))
    assert all(not r.problems for r in reports.values()), "browser checks failed:\n" + summary(reports)
    assert sum(r.math_expected for r in reports.values()) > 0, "no page has math: the MathJax check checked nothing"
    not_executed = []
    for docname in docnames:
        source = source_of(REPO, docname)
        if source is None or source.suffix != ".ipynb":
            continue
        nb = executed_notebook(REPO, real_book.parent, docname)
        code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
        if code and not any(c.get("execution_count") for c in code):
            not_executed.append(docname)
    assert not not_executed, f"notebooks that were not executed by the build: {not_executed}"
