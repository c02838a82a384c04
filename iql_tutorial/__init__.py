"""IQL from scratch: a small, fast PyTorch implementation of Implicit Q-Learning.

Kostrikov, Nair & Levine (2021), "Offline Reinforcement Learning with Implicit Q-Learning",
arXiv:2110.06169. The subpackages follow the data flow:

- ``core``: the algorithm. ``config`` (hyperparameters), ``networks`` (value, critic replicas,
  Gaussian policy), ``losses`` (Eqs. 3-7, replica min, Polyak), ``update`` (the whole IQL update
  in one function, in the paper's order: the three losses, their gradients, three Adams, the
  actor's schedule, Polyak), ``adam`` (Adam written out), ``runner`` (the update run three ways:
  eager, ``torch.compile``, CUDA graph), ``agent`` (networks + optimizers; ``agent.update(batch)``,
  ``agent.run_updates(data, n)``), ``plain`` (an independent reference).
- ``speed``: ``bench``, the benchmark against a plain PyTorch update (``report`` prints it).
- ``data``: transitions on the device, loading any Minari dataset, importing your own arrays;
  the book's dataset names (``catalogue``) and the Minari writer (``minari_writer``).
- ``datasets``: making this book's datasets (behaviour SAC, rollouts, recipes, mazes) and their
  command line (``python -m iql_tutorial data``); never imported by training.
- ``runs``: ``train``, ``finetune``, ``sweep``, ``evaluation``, ``csvlog``, ``cli``.
- ``envs``: the point mazes.
- ``viz``: the book's figure helpers.

Layers, each importing only those below it (``tests/test_layers.py`` checks them with
import-linter, configured in ``pyproject.toml``): ``utils`` (small helpers: quick mode, files,
checkpoints, the CPU thread plan, statistics) < ``envs`` < ``data`` | ``core`` (neither imports
the other) < ``runs`` | ``datasets`` | ``speed`` (none imports another) < ``viz``. No cycles, no
private name used across modules. ``IQLAgent.update`` reaches ``iql_update`` through one plain
import: ``core/agent.py`` -> ``core/runner.py`` -> ``core/update.py``.

Glossary: one word per concept, in the code, the command line, the logs and the book.

- *update*: one gradient update of the value network, the critics and the actor together
  (``iql_update``, ``IQLAgent.update``, ``run_updates``, ``num_updates``, ``UpdateRunner``).
  Adam's own per-parameter count of its steps is ``adam_counts`` (``core.adam``).
- *step*: a point on the training clock, counted in updates: ``--steps`` and ``total_steps`` (the
  budget), the ``step`` column of every log and checkpoint. Interaction with an environment is an
  *environment step* (``env_step``, ``online_steps`` when fine-tuning).
- *replica*: one of the ``num_critics`` critics, evaluated together by ``ReplicatedCritic``; the
  *replica min* is the pessimistic min over them.
- *mode*: how an update executes, only: ``auto``, ``eager``, ``compile``, ``cuda-graph``
  (``--mode``, ``IQLAgent.mode``). The *policy* is ``awr`` (IQL's advantage-weighted
  regression) or ``bc`` (behaviour cloning): the identifiers of code, command line, CSV files and
  run folders; figures and pages show the labels IQL and BC, mapped in one place
  (``core.methods.LABELS``). ``reward_norm`` and ``priority`` are settings, not modes.
- *naive*: the naive offline baseline, off-policy SAC trained on the fixed dataset with no
  environment interaction (``runs.naive``, ``python -m iql_tutorial naive``, the ``naive`` row of
  the results, "naive (offline SAC)" in figures): its critics overestimate Q on actions the data
  lacks, the failure IQL avoids.
- *sweep*: a grid of training runs (``python -m iql_tutorial sweep``); its *results* are the
  files it writes (``data/results/*.csv|json``).
- *quick*: the small budgets of ``IQL_QUICK=1`` (tests, CI).
- *datasets path*: the folder of Minari datasets, ``$MINARI_DATASETS_PATH``
  (``data.datasets_path()``).

One command line, ``python -m iql_tutorial <command>`` (``__main__``): ``train``, ``finetune``,
``sweep``, ``bench``, ``data``, ``sac``, ``naive``, ``watch``; ``python -m iql_tutorial`` lists them.
"""

from iql_tutorial._version import __version__
from iql_tutorial.core.agent import IQLAgent
from iql_tutorial.core.config import IQLConfig

__all__ = ["IQLAgent", "IQLConfig", "__version__"]
