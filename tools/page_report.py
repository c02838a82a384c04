#!/usr/bin/env python
"""Per-page code figures of a built book (issue 22, item 1), measured in headless Chromium.

Usage::

    .venv/bin/python tools/page_report.py [HTML] [--src REPO] [--screenshots DIR] [--problems]

Runs the page checks of ``tools/check_book.py`` on every page of the toc and prints one row per
page (a Markdown table):

- **visible**: non-blank lines of code-cell inputs a reader sees without opening anything;
- **collapsed**: lines behind a "show code" toggle (``hide-input``, ``hide-cell``);
- **removed**: lines of cells the page does not show at all (``remove-cell``, ``remove-input``),
  from the executed notebook;
- **longest**: the longest visible cell, in lines;
- **code share**: the height of the visible code-cell inputs over the height of the page's
  article, with every toggle closed (as a reader first sees the page);
- **limit** and **checks**: the page's visible-line limit and how many page checks it fails
  (``--problems`` lists them).

Exit status 0 whatever the checks find (this is a report; ``check_book.py`` is the gate), 2 when
the checks could not run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from check_book import REPO, CheckError, check_book, code_line_limit  # noqa: E402


def table(reports) -> str:
    head = "| page | visible | collapsed | removed | longest | code share | limit | checks failed |"
    rows = [head, "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in reports.values():
        share = f"{100 * r.code_share:.0f}%" if r.code_share is not None else "-"
        limit = code_line_limit(r.docname)
        rows.append(
            f"| {r.docname} | {r.visible_code_lines} | {r.collapsed_code_lines} | {r.removed_code_lines} | "
            f"{r.longest_visible_cell} | {share} | {limit if limit is not None else '-'} | {len(r.problems)} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html", nargs="?", type=Path, default=REPO / "_build" / "html", help="the built HTML folder")
    parser.add_argument("--src", type=Path, default=REPO, help="the book's source root (with _toc.yml)")
    parser.add_argument("--screenshots", type=Path, default=None, help="default: HTML/../screenshots")
    parser.add_argument("--problems", action="store_true", help="list every failed check under the table")
    parser.add_argument("--pages", nargs="+", default=None, help="only these docnames (default: the whole toc)")
    args = parser.parse_args(argv)
    try:
        reports, problems = check_book(args.src.resolve(), args.html.resolve(), args.screenshots, only=args.pages)
    except CheckError as exc:
        print(f"page_report: {exc}", file=sys.stderr)
        return 2
    print(table(reports))
    if args.problems:
        for r in reports.values():
            for p in r.problems:
                print(f"- {r.docname}: {p}")
        for p in problems:
            print(f"- book: {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
