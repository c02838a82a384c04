"""Chapter code formatted for reading (issue 22, item 2), checked over the committed notebooks.

In a chapter a comment stands on its own line above the code it explains. Two shapes break that
and fail here, in every code cell of ``book/*.ipynb``:

- a statement split only to make room for a trailing comment: an opening ``(`` that ends its line,
  exactly one line inside, and the closing ``)`` starting the line after it, with a comment on the
  inner line or after the ``)``. This is what ``ruff format`` makes of ``f(x)  # a long comment``
  that does not fit the 77 columns (``torch.set_num_threads(\\n    1\\n)  # ...``, ``NEAR = (\\n
  0.3  # ...\\n)``). A call whose arguments need several lines is not this shape, nor is a
  bracket split without a comment;
- ``# fmt: skip`` or ``# fmt: off`` (code the formatter is told not to format).

The cells are read with Python's tokenizer, so a ``#`` or a bracket inside a string is not
mistaken for a comment; IPython lines (``%magic``, ``!shell``) are blanked first.

Every name read in a shown cell is defined on the page (issue 29, item 1): ``tools/names_check.py``
runs on every chapter, and on tiny notebooks here that must fail (a name defined only in a removed
cell, a name read before the cell that defines it).
"""

from __future__ import annotations

import io
import re
import sys
import tokenize
from pathlib import Path

import nbformat
import pytest

BOOK = Path(__file__).resolve().parents[1] / "book"
sys.path.insert(0, str(BOOK.parent / "tools"))

from names_check import undefined_names  # noqa: E402

CHAPTERS = sorted(BOOK.glob("*.ipynb"))
FMT_ESCAPE = re.compile(r"#\s*fmt:\s*(skip|off)\b")


def _tokens(source: str) -> list[tokenize.TokenInfo]:
    lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]
    try:
        return list(tokenize.generate_tokens(io.StringIO("\n".join(lines) + "\n").readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return []


def split_for_comment(source: str) -> list[str]:
    """The statements of ``source`` split over three lines to make room for a trailing comment:
    ``(`` ending a line, one line, ``)`` opening the next, a comment on either of the last two."""
    tokens = _tokens(source)
    lines = source.splitlines()
    comment_lines = {t.start[0] for t in tokens if t.type == tokenize.COMMENT}
    found = []
    stack: list[tokenize.TokenInfo] = []
    for i, tok in enumerate(tokens):
        if tok.type != tokenize.OP or tok.string not in "()[]{}":
            continue
        if tok.string in "([{":
            stack.append((tok, i))
            continue
        if not stack:
            continue
        opener, j = stack.pop()
        if opener.string != "(" or tok.string != ")":
            continue
        after = tokens[j + 1] if j + 1 < len(tokens) else None
        # the "(" ends its line (only a newline may follow it; a comment there is another shape)
        if after is None or after.type != tokenize.NL:
            continue
        open_line, close_line = opener.start[0], tok.start[0]
        if close_line != open_line + 2:
            continue
        if lines[close_line - 1][: tok.start[1]].strip():  # the ")" must open its line
            continue
        if {open_line + 1, close_line} & comment_lines:
            found.append("\n".join(lines[open_line - 1 : close_line]))
    return found


def fmt_escapes(source: str) -> list[str]:
    return [t.line.rstrip() for t in _tokens(source) if t.type == tokenize.COMMENT and FMT_ESCAPE.search(t.string)]


def code_cells(path: Path) -> list[tuple[int, str]]:
    nb = nbformat.read(path, as_version=4)
    return [(i + 1, c.source) for i, c in enumerate(nb.cells) if c.cell_type == "code"]


def test_the_rules_catch_the_issue_examples_and_pass_ordinary_code():
    bad = [
        "torch.set_num_threads(\n    1\n)  # small networks: one thread is faster\n",
        "NEAR = (\n    0.3  # within this distance of the goal\n)\n",
        "y = r + GAMMA * (1.0 - done).view(1, -1, 1) * value_net(\n    s_next\n)  # [E, B, 1]\n",
        "if x:\n    total = (\n        a + b  # both halves\n    )\n",
    ]
    for source in bad:
        assert len(split_for_comment(source)) == 1, source
    good = [
        "# small networks: one thread is faster\ntorch.set_num_threads(1)\n",
        "agent = IQLAgent(\n    obs_dim,\n    act_dim,\n)  # two arguments, two lines\n",
        "total = (\n    first_part_of_a_long_expression + second_part\n)\n",
        "s = '(\\n# not a comment\\n)'\n",
        "fig, ax = plt.subplots(\n    figsize=(6, 3)\n)\n",
        "%matplotlib inline\nx = 1  # a trailing comment on a one-line statement is not this shape\n",
        "f(  # the comment is on the opening line\n    1\n)\n",
    ]
    for source in good:
        assert split_for_comment(source) == [], source
    assert fmt_escapes("x = [1,2]  # fmt: skip\n") and fmt_escapes("# fmt: off\nx=1\n# fmt: on\n")
    assert fmt_escapes("s = '# fmt: skip'\n# format: skipping nothing\n") == []


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.name for p in CHAPTERS])
def test_no_statement_is_split_to_fit_a_trailing_comment(path):
    found = [(n, s) for n, source in code_cells(path) for s in split_for_comment(source)]
    assert not found, (
        f"{path.name}: {len(found)} statements split over three lines to make room for a trailing comment "
        "(put the comment on its own line above the statement):\n"
        + "\n".join(f"  cell {n}:\n    " + s.replace("\n", "\n    ") for n, s in found[:10])
    )


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.name for p in CHAPTERS])
def test_no_fmt_skip_in_a_chapter(path):
    found = [(n, line) for n, source in code_cells(path) for line in fmt_escapes(source)]
    assert not found, f"{path.name}: code the formatter is told to skip (format it for reading instead): " + "; ".join(
        f"cell {n}: {line.strip()!r}" for n, line in found
    )


def _notebook(tmp_path: Path, cells: list[tuple[list[str], str]]) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source, metadata={"tags": tags}) for tags, source in cells]
    path = tmp_path / "tiny.ipynb"
    nbformat.write(nb, path)
    return path


def test_names_check_reports_a_name_defined_only_in_a_removed_cell(tmp_path):
    path = _notebook(
        tmp_path,
        [
            (["bootstrap", "remove-cell"], "import subprocess\nREPO = 'x'\n"),
            (["remove-cell"], "import numpy as np\nrng = np.random.default_rng(0)\n"),
            ([], "%matplotlib inline\nx = rng.normal(size=3)\nprint(REPO)\n"),
        ],
    )
    found = undefined_names(path)
    assert [(f.cell, f.names) for f in found] == [(3, ["REPO", "rng"])]


def test_names_check_knows_scopes_and_collapsed_cells(tmp_path):
    path = _notebook(
        tmp_path,
        [
            (["hide-input"], "import numpy as np\nfrom math import pi as PI\n"),
            (["remove-input"], "hidden = 1\n"),
            (
                [],
                "def f(a, *args, scale=PI, **kw):\n"
                "    b = [a * i for i in range(3) if (j := i)]\n"
                "    global G\n"
                "    G = j\n"
                "    return np.sum(b) + late + sum(args) + kw['k'] + (lambda z: z)(scale)\n"
                "class C:\n    k = 1\n    v = k + 1\n"
                "with open('notes.txt') as fh, np.errstate() as (e1, e2):\n    pass\n"
                "for n, (p, q) in enumerate([(1, 2)]):\n    pass\n"
                "try:\n    pass\nexcept ValueError as err:\n    print(err)\n"
                "out = {k: v for k, v in zip('ab', [n, p])}\n"
                "total = 0\ntotal += q\n",
            ),
            (["hide-cell"], "late = G + hidden + too_early\ncounter += 1\n"),
            ([], "too_early = 2\nprint(display, C.v, out, total, fh, e1, e2)\n"),
        ],
    )
    found = undefined_names(path)
    # `hidden` comes from a removed cell; `too_early` is read before the cell that defines it;
    # `counter += 1` reads a name never defined; the function's late read of `late` is fine
    assert [(f.cell, f.names) for f in found] == [(4, ["counter", "hidden", "too_early"])]


@pytest.mark.parametrize("path", CHAPTERS, ids=[p.name for p in CHAPTERS])
def test_every_name_a_page_reads_is_defined_on_the_page(path):
    found = undefined_names(path)
    assert not found, (
        f"{path.name}: shown cells read names defined nowhere a reader can see (define or import them in a "
        "shown or hide-input cell; see tools/names_check.py):\n" + "\n".join(f"  {f}" for f in found)
    )
