"""Command line for datasets: ``import`` your own arrays, or list/build/select the book's.

python -m iql_tutorial.data import FILE --id NAMESPACE/TASK/KIND-v0   # your arrays -> a Minari dataset
python -m iql_tutorial.data list | build ... | select ...             # the book's datasets
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["import"]:
        from iql_tutorial.data.importer import main as import_main

        return import_main(argv[1:])
    from iql_tutorial.datasets.cli import main as datasets_main

    return datasets_main(argv)


if __name__ == "__main__":
    sys.exit(main())
