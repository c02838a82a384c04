"""Every number the book's prose states comes from the build or from a citation.

The rule, enforced on every markdown cell of the chapters (``book/*.ipynb``) and on the Markdown
pages (``book/*.md``): after removing what is not prose (code, math, glued values, roles such as
``{cite}``/``{doc}``/``{glue}``, link targets, comments, tables' separator rows), a digit may only
appear

- inside a name that also has letters (``D4RL``, ``Walker2d``, ``2x256``, ``v0``) or a software
  version (``Python 3.11``, ``PyTorch 2.11``);
- in a reference to a part of a text: ``Eq. (5)``, ``Eqs. (5)-(7)``, ``chapter 3``, ``section
  5.3``, ``Appendix B``, ``Algorithm 1``, ``Figure 2``, ``Table 1``, a list item's number;
- in a sentence that cites its source (contains a ``{cite}`` role): numbers from the paper and
  other publications are cited, not glued.

Anything else is a number typed from some run, which the next build on another machine would
contradict: glue it (MyST-NB ``{glue:text}``), write it as math if it is a definition or a
setting (``$\\tau = 0.7$``), or cite where it comes from. ``ALLOWED`` lists the few exceptions,
each with its reason; ``CHECKED_ELSEWHERE`` the pages whose numbers another test ties to their
source.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

BOOK = Path(__file__).resolve().parents[1] / "book"

NOT_PROSE = [
    re.compile(r"<!--.*?-->", re.S),  # HTML comments
    re.compile(r"^%.*$", re.M),  # MyST comments
    re.compile(r"^(```|~~~|:::).*?^\1", re.S | re.M),  # fenced blocks: code, directives, admonition fences
    re.compile(r"\$\$.*?\$\$", re.S),  # display math
    re.compile(r"(?<!\\)\$[^$\n]+?(?<!\\)\$"),  # inline math
    re.compile(r"\{[a-z:-]+\}`[^`]*`"),  # roles: {glue:text}`k:.1f`, {cite:p}`key`, {doc}`x`, {math}`...`
    re.compile(r"``[^`]*``|`[^`\n]*`"),  # inline code
    re.compile(r"\]\([^)]*\)"),  # link targets
    re.compile(r"^\s*\|?[\s:|-]+\|[\s:|-]*$", re.M),  # table separator rows
    re.compile(r"^\s*(\d+\.|[-*+])\s", re.M),  # list markers
    re.compile(r"^#+\s", re.M),  # heading markers
    re.compile(r"https?://\S+"),  # bare URLs
]
PART_REFERENCES = re.compile(
    r"\b(Eqs?\.|Equations?|[Cc]hapters?|[Ss]ections?|§|Appendix|Appendices|Algorithm|Figures?|Fig\.|Tables?|"
    r"Exercises?|[Ss]tep)\s*\(?\d[\d.]*\)?((\s*(-|–|,|and|to)\s*\(?\d[\d.]*\)?)*)"
)
VERSIONS = re.compile(
    r"\b(Python|PyTorch|torch|Jupyter Book|jupyter-book|Minari|MuJoCo|gymnasium|CUDA|Ray)\s+v?\d[\d.]*"
)
WORD_WITH_DIGITS = re.compile(r"\b(?=[A-Za-z0-9_.-]*[A-Za-z])(?=[A-Za-z0-9_.-]*\d)[A-Za-z0-9_.-]+\b")
CITES = re.compile(r"\{cite(:[a-z]+)?\}`[^`]*`")

# (file, text) pairs allowed on purpose, each with its reason.
ALLOWED: dict[tuple[str, str], str] = {}
# Pages whose numbers are checked another way, with the test that does it.
CHECKED_ELSEWHERE = {
    "performance.md": "tests/test_bench.py::test_every_figure_on_the_performance_page_is_in_a_committed_bench_output "
    "(a Markdown page: every figure must appear in a committed data/results/bench-*.txt output)",
}


def prose_blocks() -> list[tuple[str, str]]:
    """(file, markdown) of every prose block of the book."""
    out = []
    for path in sorted(BOOK.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        out += [(path.name, c.source) for c in nb.cells if c.cell_type == "markdown"]
    for path in sorted(BOOK.glob("*.md")):
        out.append((path.name, path.read_text()))
    return out


def stray_numbers(markdown: str) -> list[str]:
    """The sentences of ``markdown`` that state a number the rule does not allow (shown with the
    non-prose parts blanked out)."""
    text = CITES.sub(" CITED ", markdown)
    for pattern in NOT_PROSE:
        text = pattern.sub(" ", text)
    text = PART_REFERENCES.sub(" ", text)
    text = VERSIONS.sub(" ", text)
    text = WORD_WITH_DIGITS.sub(" ", text)
    bad = []
    for sentence in re.split(r"(?<=[.!?])\s+|\n\s*\n", text):
        if "CITED" not in sentence and re.search(r"\d", sentence):
            bad.append(" ".join(sentence.split())[:200])
    return bad


def test_the_rule_catches_a_typed_number_and_passes_glued_cited_and_math_ones():
    assert stray_numbers("IQL scored about 54 here.") == ["IQL scored about 54 here."]
    assert stray_numbers("The curve runs from 11 to 35 over training.")
    ok = (
        "IQL scored {glue:text}`ch07_score:.1f` here. The paper reports 94.7 on Hopper {cite:p}`kostrikov2021iql`. "
        "We use $\\tau = 0.7$ and `batch_size=256` (Eq. (5), chapter 3, section 5.3) on D4RL and Walker2d with "
        "2x256 networks.\n\n1. first item\n2. second item\n"
    )
    assert stray_numbers(ok) == []


@pytest.mark.parametrize("name", sorted({f for f, _ in prose_blocks()} - set(CHECKED_ELSEWHERE)))
def test_prose_states_no_number_that_is_neither_glued_nor_cited(name):
    bad = [s for f, md in prose_blocks() if f == name for s in stray_numbers(md) if (f, s) not in ALLOWED]
    assert not bad, f"{name}: numbers typed into the prose (glue them, cite them, or write them as math):\n" + (
        "\n".join(f"  - {s}" for s in bad)
    )


def test_pages_checked_elsewhere_have_that_check():
    from pathlib import Path as _P

    for page, how in CHECKED_ELSEWHERE.items():
        path, name = how.split(" ", 1)[0].split("::")
        assert (BOOK / page).exists() and f"def {name}(" in (_P(__file__).parents[1] / path).read_text(), page
