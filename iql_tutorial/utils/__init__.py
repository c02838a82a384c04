"""Small shared helpers, one concern a module, below every other layer:

- ``budget``: quick mode (``IQL_QUICK``) and ``budget(full, quick)``;
- ``progress``: the training loops' progress bars;
- ``device``: the device, chosen once; gymnasium's continuous ``Box`` spaces;
- ``seeding``: seeds and the global RNG states a checkpoint keeps;
- ``files``: atomic writes and one-line write errors;
- ``checkpoints``: checkpoint files, written atomically and loaded as data only;
- ``threads``: how the update uses a CPU's threads (the thread plan; import it as a module).

The names below are importable from ``iql_tutorial.utils`` itself.
"""

from iql_tutorial.utils.budget import QUICK_ENV_VAR, budget, quick_mode
from iql_tutorial.utils.checkpoints import load_checkpoint, save_checkpoint
from iql_tutorial.utils.device import box, resolve_device
from iql_tutorial.utils.files import (
    WriteError,
    atomic_write_bytes,
    atomic_write_text,
    first_line,
    os_cause,
    write_error,
)
from iql_tutorial.utils.progress import live_status, progress_bar, progress_interval
from iql_tutorial.utils.seeding import rng_state, seed_everything, set_rng_state

__all__ = [
    "QUICK_ENV_VAR",
    "WriteError",
    "atomic_write_bytes",
    "atomic_write_text",
    "box",
    "budget",
    "first_line",
    "live_status",
    "load_checkpoint",
    "os_cause",
    "progress_bar",
    "progress_interval",
    "quick_mode",
    "resolve_device",
    "rng_state",
    "save_checkpoint",
    "seed_everything",
    "set_rng_state",
    "write_error",
]
