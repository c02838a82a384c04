"""Command line for the project's datasets.

python -m iql_tutorial.data list                 # every dataset: size, reference scores, built or not
python -m iql_tutorial.data build pendulum-medium  # one dataset (a short name or an id)
python -m iql_tutorial.data build --all [--force]  # everything this machine can build
python -m iql_tutorial.data select hopper        # choose medium/expert snapshots of a SAC run
"""

from __future__ import annotations

import argparse
import sys
import time

from iql_tutorial.datasets.recipes import (
    RECIPES,
    SAC_ENVS,
    build,
    buildable,
    format_table,
    markdown_table,
    resolve,
    table_rows,
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m iql_tutorial.data", description="The project's offline datasets.")
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
        print("build: name a dataset (see `python -m iql_tutorial.data list`) or pass --all", file=sys.stderr)
        return 2
    for n in names:
        t = time.time()
        build(n, force=a.force)
        print(f"{n}: ready ({time.time() - t:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
