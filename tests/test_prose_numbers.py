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
each with its reason (there are none: no sentence may be allowed in, nor built in Python to get
round the rule); ``CHECKED_ELSEWHERE`` the pages whose numbers another test ties to their source.

Glued values are numbers and short labels, never sentences (issue 22, item 3): a glued string of
more than ``MAX_GLUED_WORDS`` words fails. Two checks, because a sentence can be built in many
ways:

- here, statically, every ``glue(name, value)`` call of the chapters' code: the words ``value``
  can have, read from its expression (a string literal, an f-string, whose replacement fields
  count one word each, ``+`` of strings, a conditional expression's longer branch) or, when it is
  a variable, from every assignment to that variable in the notebook. What cannot be read
  statically (a ``join``, a function's result) is not judged here;
- in every build, by the page check (``tools/check_book.py``, ``long_glued_strings``): the
  glued values themselves, read from the executed notebook's glue outputs, however they were
  built. Its tiny-book test is ``tests/test_book.py::test_tiny_book_check_catches_warnings_repeated_logs_and_glued_sentences``.
"""

from __future__ import annotations

import ast
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


# ------------------------------------------------------------------ glued values are not sentences
MAX_GLUED_WORDS = 8  # as tools/check_book.py's MAX_GLUED_WORDS


def _words(text: str) -> int:
    return sum(1 for word in text.split() if re.search(r"[A-Za-z]", word))


def _value_words(node: ast.AST, assignments: dict[str, list[ast.AST]], seen: frozenset = frozenset()) -> int | None:
    """The most words the expression ``node`` can glue, when that can be read statically; None
    when it cannot (a number, a call, an unknown variable). A variable: its longest assignment
    plus everything appended to it with ``+=``."""
    if isinstance(node, ast.Constant):
        return _words(node.value) if isinstance(node.value, str) else None
    if isinstance(node, ast.JoinedStr):  # an f-string: its text, and one word per field
        text = "".join(v.value if isinstance(v, ast.Constant) else " X " for v in node.values)
        return _words(text)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _value_words(node.left, assignments, seen), _value_words(node.right, assignments, seen)
        return None if left is None and right is None else (left or 0) + (right or 0)
    if isinstance(node, ast.IfExp):
        branches = [_value_words(b, assignments, seen) for b in (node.body, node.orelse)]
        known = [b for b in branches if b is not None]
        return max(known) if known else None
    if isinstance(node, ast.Name) and node.id not in seen:
        inner = seen | {node.id}
        known = [w for v in assignments.get(node.id, []) if (w := _value_words(v, assignments, inner)) is not None]
        appended = [w for v in assignments.get(f"{node.id}+=", []) if (w := _value_words(v, assignments, inner))]
        return max(known, default=0) + sum(appended) if known or appended else None
    return None


def glued_sentences(sources: list[str], max_words: int = MAX_GLUED_WORDS) -> list[str]:
    """The ``glue(name, value)`` calls of a notebook's code cells whose value can be read
    statically and has more than ``max_words`` words (see the module's docstring)."""
    trees = []
    for source in sources:
        lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines()]
        try:
            trees.append(ast.parse("\n".join(lines)))
        except SyntaxError:
            continue
    assignments: dict[str, list[ast.AST]] = {}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        assignments.setdefault(target.id, []).append(node.value)
            elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
                assignments.setdefault(f"{node.target.id}+=", []).append(node.value)
    found = []
    for tree in trees:
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or len(node.args) < 2:
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if name != "glue":
                continue
            words = _value_words(node.args[1], assignments)
            if words is not None and words > max_words:
                found.append(f"{ast.unparse(node.args[0])} ({words} words): {ast.unparse(node.args[1])[:100]}")
    return found


def test_the_glue_rule_catches_a_glued_sentence_and_passes_numbers_and_labels():
    bad = [
        'glue("leak", "It rises from cell to cell, and the policy follows it.", display=False)',
        'x = 3\nglue("t", f"{x} torch threads run the whole update on this machine today")',
        'leak = "It rises from cell to cell"\nleak += " and the policy follows it to the goal."\nglue("leak", leak)',
        'phrase = "ahead" if a > b else "behind by more than two standard errors of the mean here"\n'
        'glue("order", phrase)',
    ]
    for source in bad:
        assert len(glued_sentences([source])) == 1, source
    assert glued_sentences(
        ["leak = (\n    'one two three four five '\n    'six seven eight nine'\n)", "glue('l', leak)"]
    )
    good = [
        'glue("ch05_score", float(score), display=False)',
        'glue("label", "HalfCheetah medium-replay", display=False)',
        'glue("n", f"{n:,} transitions")',
        'glue("table", df.style.format("{:.1f}"))',
        "glue(f'ch03_ratio_{wd}_{n}', ratio, display=False)",
    ]
    for source in good:
        assert glued_sentences([source]) == [], source


@pytest.mark.parametrize("path", sorted(BOOK.glob("*.ipynb")), ids=lambda p: p.name)
def test_no_sentence_is_glued(path):
    nb = nbformat.read(path, as_version=4)
    found = glued_sentences([c.source for c in nb.cells if c.cell_type == "code"])
    assert not found, (
        f"{path.name}: sentences glued from Python (write the sentence in the Markdown and glue only its numbers "
        f"and labels; at most {MAX_GLUED_WORDS} words):\n" + "\n".join(f"  - {f}" for f in found)
    )
