"""The package's one command line: ``python -m iql_tutorial <command> [args]``.

The first word picks a command; the rest goes to that command's ``main(argv)``. Only the chosen
command's module is imported (``bench`` never imports the dataset-making code, ``train`` never
imports SAC). ``python -m iql_tutorial <command> --help`` shows a command's options.
"""

from __future__ import annotations

import importlib
import sys

PROG = "python -m iql_tutorial"

# command -> (module with main(argv), one line for the usage); in the order a user meets them
COMMANDS = {
    "train": ("iql_tutorial.runs.train", "train IQL (or the BC baseline) offline on a dataset; resumable"),
    "finetune": ("iql_tutorial.runs.finetune", "fine-tune a finished offline run online (offline-to-online)"),
    "sweep": ("iql_tutorial.runs.sweep", "the results sweep: IQL and BC over datasets and seeds (--ray: a cluster)"),
    "bench": ("iql_tutorial.speed.bench", "benchmark the package's update against a plain PyTorch one"),
    "data": ("iql_tutorial.datasets.cli", "datasets: list, build, import your own arrays, select SAC snapshots"),
    "sac": ("iql_tutorial.datasets.sac", "train a SAC behaviour policy (the first step of making a dataset)"),
    "naive": ("iql_tutorial.runs.naive", "the naive offline baseline (SAC on fixed data): its Q against Monte Carlo"),
    "watch": ("iql_tutorial.viz.watch", "watch a run's final policy act: render episodes, print scores, save a video"),
}


def usage() -> str:
    width = max(len(c) for c in COMMANDS)
    lines = [f"usage: {PROG} <command> [args]", "", "commands:"]
    lines += [f"  {c:<{width}}  {line}" for c, (_, line) in COMMANDS.items()]
    lines += ["", f"{PROG} <command> --help shows a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"{PROG}: unknown command {command!r} (choose from {', '.join(COMMANDS)})", file=sys.stderr)
        return 2
    from iql_tutorial.utils.budget import quick_mode

    try:
        quick_mode()  # an IQL_QUICK that means neither on nor off is refused before any work
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    code = importlib.import_module(COMMANDS[command][0]).main(rest)
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
