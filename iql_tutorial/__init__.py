"""IQL from scratch: a small, fast PyTorch implementation of Implicit Q-Learning.

Kostrikov, Nair & Levine (2021), "Offline Reinforcement Learning with Implicit Q-Learning",
arXiv:2110.06169. The subpackages follow the data flow:

- ``core``: the algorithm. ``config`` (hyperparameters), ``networks`` (value, critic ensemble,
  Gaussian policy), ``losses`` (Eqs. 3-7, replica min, Polyak), ``step`` (one whole IQL update
  as a pure function: losses, gradients, three Adams, the actor's schedule, Polyak), ``agent``
  (networks + optimizers; ``update`` calls the step), ``plain`` (an independent reference).
- ``speed``: the step run three ways (``runner``: eager, ``torch.compile``, CUDA graph) and
  ``bench``, the benchmark against a plain PyTorch update.
- ``data``: transitions on the device, loading any Minari dataset, importing your own arrays;
  the book's dataset names (``catalogue``) and the Minari writer (``minari_writer``).
- ``datasets``: making this book's datasets (behaviour SAC, rollouts, recipes, mazes) and their
  command line (``python -m iql_tutorial data``); never imported by training.
- ``runs``: ``train``, ``finetune``, ``sweep``, ``evaluation``, ``checkpoint``, ``cli``.
- ``envs``: the point mazes.
- ``viz``: the book's figure helpers.

Layers, each importing only those below it (``tests/test_layers.py`` checks them with
import-linter, configured in ``pyproject.toml``): ``utils`` < ``envs`` < ``core`` < ``data`` <
``speed`` < ``runs`` | ``datasets`` (neither imports the other) < ``viz``. No cycles, no private
name used across modules; this ``__init__`` is the one place that ties layers together.

One command line, ``python -m iql_tutorial <command>`` (``__main__``): ``train``, ``finetune``,
``sweep``, ``bench``, ``data``, ``sac``; ``python -m iql_tutorial`` lists them.
"""

from iql_tutorial._version import __version__
from iql_tutorial.core.agent import IQLAgent
from iql_tutorial.core.config import IQLConfig
from iql_tutorial.speed.runner import StepRunner

# The agent's updates run through the speed layer's runner (eager, compiled, CUDA graph); core
# never imports speed, so the package plugs it in here, before any agent is made.
IQLAgent.runner_class = StepRunner

__all__ = ["IQLAgent", "IQLConfig", "__version__"]
