"""Command line for datasets (``python -m iql_tutorial data``): ``import`` your own arrays, or
list/build/select the book's.

python -m iql_tutorial data import FILE --id NAMESPACE/TASK/KIND-v0 ...  # your arrays -> a Minari dataset
python -m iql_tutorial data list                 # every dataset: size, reference scores, built or not
python -m iql_tutorial data build pendulum-medium  # one dataset (a short name or an id)
python -m iql_tutorial data build --all [--force]  # everything this machine can build
python -m iql_tutorial data select hopper        # choose medium/expert snapshots of a SAC run

It spans both layers (``data.importer`` and this subpackage's builders), so it lives in the upper
one; ``python -m iql_tutorial data`` runs its ``main`` (``iql_tutorial/__main__.py``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HELP = """usage: python -m iql_tutorial data {import,list,build,select} ...

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
              (python -m iql_tutorial data import --help for every option)
  list        every dataset: the book's (built or not) and the others under
              MINARI_DATASETS_PATH (imported ones), with the folder looked in
  build       build the book's datasets (short names such as pendulum-medium, or ids)
  select      pick the medium/expert snapshots of a SAC run and the reference scores

Train on a dataset with: python -m iql_tutorial train --dataset ID (the id, not a short name)."""


def list_others() -> str:
    """The lines ``data list`` adds: where it looked, and the datasets there that are not the
    book's (imported ones, downloaded ones)."""
    from iql_tutorial.data.catalogue import RECIPES
    from iql_tutorial.data.importer import remove_stale_imports
    from iql_tutorial.data.loader import datasets_path, list_local_ids
    from iql_tutorial.datasets.minari_io import broken

    root = datasets_path()
    if not root.is_dir():
        return f"\nlooked in {root} (MINARI_DATASETS_PATH): the folder does not exist, so nothing is built or imported there."
    lines = [f"\nlooked in {root} (MINARI_DATASETS_PATH)."]
    lines += [f"note: {note}" for note in remove_stale_imports(root)]
    others = [i for i in list_local_ids() if i not in RECIPES]
    damaged = {i: why for i in dataset_folders(root) if i not in RECIPES and (why := broken(i))}
    others = [i for i in others if i not in damaged]
    if others:
        lines.append(f"other datasets there (imported or downloaded; train with --dataset ID): {len(others)}")
        lines += [f"  {i}" for i in others]
    else:
        lines.append("no other datasets there (python -m iql_tutorial data import adds yours).")
    if damaged:
        lines.append(f"broken datasets there (import them again with --force, or delete their folders): {len(damaged)}")
        lines += [f"  {i}: {why}" for i, why in damaged.items()]
    return "\n".join(lines)


def dataset_folders(root: Path) -> list[str]:
    """The ids of every folder under ``root`` that holds a ``data`` folder, as Minari looks for
    datasets (hidden folders skipped), readable or not."""
    found: list[str] = []

    def walk(d: Path, prefix: str) -> None:
        if (d / "data").is_dir():
            found.append(prefix)
            return
        for child in sorted(d.iterdir()):
            if child.is_dir() and not child.name.startswith("."):
                walk(child, f"{prefix}/{child.name}" if prefix else child.name)

    try:
        walk(root, "")
    except OSError:
        pass
    return [i for i in found if i]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(HELP)
        return 0 if argv else 2
    if argv[:1] == ["import"]:
        from iql_tutorial.data.importer import main as import_main

        return import_main(argv[1:])
    try:
        code = book_datasets(argv)
        if argv[0] == "list" and "--markdown" not in argv and code == 0:
            print(list_others())
    except (ValueError, OSError) as e:  # MINARI_DATASETS_PATH empty or a file, an unreadable folder
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    return code


def book_datasets(argv: list[str]) -> int:
    """``list``, ``build`` and ``select`` of the book's datasets."""
    from iql_tutorial.datasets.recipes import (  # the dataset-making code: not for ``import``
        RECIPES,
        SAC_ENVS,
        build,
        buildable,
        format_table,
        markdown_table,
        resolve,
        table_rows,
    )

    p = argparse.ArgumentParser(prog="python -m iql_tutorial data", description="The project's offline datasets.")
    sub = p.add_subparsers(dest="cmd", required=True)
    ls = sub.add_parser("list", help="show every dataset, its size, reference scores and whether it is built")
    ls.add_argument("--markdown", action="store_true", help="print a Markdown table (for data/README.md)")
    b = sub.add_parser("build", help="build datasets (skips the ones already built unless --force)")
    b.add_argument("names", nargs="*", help="dataset ids or short names (e.g. pendulum-medium)")
    b.add_argument("--all", action="store_true", help="every dataset this machine has the inputs for")
    b.add_argument("--force", action="store_true", help="rebuild even if built")
    s = sub.add_parser("select", help="pick the medium/expert snapshots of a SAC run and the reference scores")
    s.add_argument("env", choices=sorted(SAC_ENVS))
    s.add_argument("--max-step", type=int, default=None, help="ignore snapshots after this many env steps")
    s.add_argument("--ref-episodes", type=int, default=100, help="random-policy episodes for ref_min_score")
    s.add_argument(
        "--expert-episodes", type=int, default=None, help="expert episodes for ref_max_score (default: same)"
    )
    a = p.parse_args(argv)

    if a.cmd == "list":
        print(markdown_table(table_rows()) if a.markdown else format_table(table_rows()))
        return 0
    if a.cmd == "select":
        from iql_tutorial.datasets.behaviour import select_behaviour

        info = select_behaviour(
            a.env,
            SAC_ENVS[a.env].env_id,
            max_step=a.max_step,
            ref_episodes=a.ref_episodes,
            expert_episodes=a.expert_episodes,
            best_is_expert=SAC_ENVS[a.env].best_is_expert,
        )
        print(f"ref_min {info['ref_min_score']:.1f}  ref_max {info['ref_max_score']:.1f}  "
              f"medium @ {info['medium']['env_steps']} ({info['medium']['normalized']:.0f}%)  "
              f"expert @ {info['expert']['env_steps']} ({info['expert']['normalized']:.0f}% sampled)")  # fmt: skip
        return 0
    if a.all:
        names = [r.dataset_id for r in RECIPES.values() if buildable(r)]
    elif a.names:
        try:
            names = [resolve(n).dataset_id for n in a.names]
        except KeyError as e:
            print(e.args[0], file=sys.stderr)
            return 2
    else:
        print("build: name a dataset (see `python -m iql_tutorial data list`) or pass --all", file=sys.stderr)
        return 2
    for n in names:
        t = time.time()
        build(n, force=a.force)
        print(f"{n}: ready ({time.time() - t:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
