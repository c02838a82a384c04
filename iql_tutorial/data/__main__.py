"""Command line for datasets: ``import`` your own arrays, or list/build/select the book's.

python -m iql_tutorial.data import FILE --id NAMESPACE/TASK/KIND-v0 ...  # your arrays -> a Minari dataset
python -m iql_tutorial.data list | build ... | select ...                 # the book's datasets
"""

from __future__ import annotations

import sys

HELP = """usage: python -m iql_tutorial.data {import,list,build,select} ...

Offline datasets: import your own logged arrays, or list, build and select the book's.

commands:
  import FILE --id NAMESPACE/TASK/KIND-v0 (--env ENV_ID | --action-low L --action-high H)
              your logged transitions (an .npz or HDF5 file of named arrays, one row per
              transition, episodes one after another) as a Minari dataset:
                observations       [T, d]       the state the action was taken in
                actions            [T, a]       continuous actions, inside the bounds
                rewards            [T] or [T,k] the reward (k components allowed)
                terminals          [T]          1 where the episode ended in a terminal state
                timeouts           [T]          1 where the episode was cut (time limit, end of log)
                episode_ends       [E] or [T]   instead of timeouts: end offsets or a flag per row
                next_observations  [T, d]       optional: the state after the action
              (python -m iql_tutorial.data import --help for every option)
  list        every dataset: the book's (built or not) and the others under
              MINARI_DATASETS_PATH (imported ones), with the folder looked in
  build       build the book's datasets (short names such as pendulum-medium, or ids)
  select      pick the medium/expert snapshots of a SAC run and the reference scores

Train on a dataset with: python -m iql_tutorial.train --dataset ID (the id, not a short name)."""


def list_others() -> str:
    """The lines ``data list`` adds: where it looked, and the datasets there that are not the
    book's (imported ones, downloaded ones)."""
    from iql_tutorial.data.loader import datasets_path, list_local_ids
    from iql_tutorial.datasets.recipes import RECIPES

    root = datasets_path()
    if not root.is_dir():
        return f"\nlooked in {root} (MINARI_DATASETS_PATH): the folder does not exist, so nothing is built or imported there."
    others = [i for i in list_local_ids() if i not in RECIPES]
    lines = [f"\nlooked in {root} (MINARI_DATASETS_PATH)."]
    if others:
        lines.append(f"other datasets there (imported or downloaded; train with --dataset ID): {len(others)}")
        lines += [f"  {i}" for i in others]
    else:
        lines.append("no other datasets there (python -m iql_tutorial.data import adds yours).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(HELP)
        return 0 if argv else 2
    if argv[:1] == ["import"]:
        from iql_tutorial.data.importer import main as import_main

        return import_main(argv[1:])
    from iql_tutorial.datasets.cli import main as datasets_main

    code = datasets_main(argv)
    if argv[0] == "list" and "--markdown" not in argv and code == 0:
        print(list_others())
    return code


if __name__ == "__main__":
    sys.exit(main())
