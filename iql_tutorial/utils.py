"""Small shared helpers: device choice, seeding, quick mode, atomic file writes, checkpoint files
(written atomically, loaded as data only) and one-line write errors."""

from __future__ import annotations

import errno
import io
import os
import pickle
import random
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm.auto import tqdm

if TYPE_CHECKING:
    import gymnasium as gym

QUICK_ENV_VAR = "IQL_QUICK"


def quick_mode() -> bool:
    """True when ``IQL_QUICK`` is set to a non-empty value other than ``0``: every notebook and
    script then shrinks its budgets (CI sets it; the defaults are the real budgets)."""
    return os.environ.get(QUICK_ENV_VAR, "") not in ("", "0")


def budget(full: int, quick: int) -> int:
    """``full`` normally, ``quick`` in quick mode."""
    return quick if quick_mode() else full


def progress_interval() -> float:
    """Seconds between progress-bar refreshes. Twice a second where someone watches the bar live:
    a terminal, or a Jupyter kernel (a widget, or a text line the front end redraws in place).
    Every 5 s when the output is captured to a file or pipe (a log keeps every refresh). Never
    with ``IQL_PROGRESS=final`` (the rendered book: see ``progress_bar``)."""
    if os.environ.get("IQL_PROGRESS", "") == "final":
        return float("inf")
    return 0.5 if sys.stderr.isatty() or "ipykernel" in sys.modules else 5.0


def live_status() -> bool:
    """False with ``IQL_PROGRESS=final`` (the rendered book): status lines that only matter while a
    run is going (the thread plan, "compiling ...") are then left out, as the bars' refreshes are;
    the run folder's ``threads.txt`` keeps the thread plan either way."""
    return os.environ.get("IQL_PROGRESS", "") != "final"


def progress_bar(total: int, initial: int, desc: str, unit: str, enabled: bool = True) -> tqdm:
    """The training loops' tqdm bar.

    Live by default: ``tqdm.auto`` (an ipywidgets bar in JupyterLab, a text bar elsewhere),
    refreshed every ``progress_interval()`` seconds. With ``IQL_PROGRESS=final``, which ``make
    book`` and the book tests set so that the executed notebooks rendered into the book hold
    text and no widgets, a text bar on stderr that prints nothing while it runs and one line,
    its final state, when it is closed (``tools/book_kernel_startup.py`` does the same to the
    notebooks' own ``tqdm.auto`` bars).
    """
    kwargs = dict(total=total, initial=initial, desc=desc, disable=not enabled, unit=unit)
    if os.environ.get("IQL_PROGRESS", "") != "final":
        return tqdm(**kwargs, mininterval=progress_interval())
    from tqdm.std import tqdm as text_tqdm

    class FinalLine(text_tqdm):
        closing = False

        def display(self, *args, **kwargs):  # refresh() and set_postfix() draw through here
            return super().display(*args, **kwargs) if self.closing else None

        def close(self):
            if not getattr(self, "disable", True):
                self.closing, self.delay = True, 0.0  # tqdm's close() then draws the final state
            super().close()

    return FinalLine(**kwargs, delay=float("inf"))


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` picks CUDA when available, else the CPU. Chosen once per run."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not (device == "cpu" or device == "cuda" or device.startswith("cuda:")):
        raise ValueError(f"device={device!r} is not supported: use auto, cpu, cuda or cuda:N.")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device='{device}' was asked for but CUDA is not available here; use --device cpu or auto.")
    return torch.device(device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """Every global RNG state that training touches, as tensors and plain containers only, so a
    checkpoint holding it loads with ``torch.load(..., weights_only=True)`` (no pickled code)."""
    version, mt, pos = random.getstate()
    kind, keys, npos, has_gauss, gauss = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": [int(version), torch.tensor(mt, dtype=torch.int64), None if pos is None else float(pos)],
        "numpy": [
            str(kind),
            torch.from_numpy(np.asarray(keys).astype(np.int64)),
            int(npos),
            int(has_gauss),
            float(gauss),
        ],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore ``rng_state()``."""
    version, mt, pos = state["python"]
    random.setstate((int(version), tuple(int(x) for x in mt.tolist()), pos))
    kind, keys, npos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), int(npos), int(has_gauss), float(gauss)))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _umask() -> int:
    """The process's umask (read without changing it where /proc allows)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, write: Any) -> None:
    """Write a file so that a reader (or a crash) never sees it half-written: ``write(f)``
    fills a temporary file in the same folder, which then replaces ``path`` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            # mkstemp makes the file 0600; give it the mode open() would (0666 less the umask),
            # so run folders shared between users or nodes stay readable after a rewrite
            os.fchmod(f.fileno(), 0o666 & ~_umask())
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, lambda f: f.write(text.encode()))


def box(space: Any) -> gym.spaces.Box:
    """``space`` as a ``gymnasium.spaces.Box`` (continuous actions or flat observations), or a
    ``ValueError`` saying what it is instead."""
    import gymnasium as gym

    if not isinstance(space, gym.spaces.Box):
        raise ValueError(f"Expected a continuous Box space, got {space}.")
    return space


class WriteError(OSError):
    """A file of a run could not be written: one line naming the file and the cause."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def first_line(e: BaseException, limit: int = 200) -> str:
    """The first line of an error's message, at most ``limit`` characters (for one-line errors)."""
    return (str(e).strip().splitlines() or [""])[0][:limit]


def os_cause(e: BaseException) -> str:
    """The cause of an ``OSError`` in words, with the hint that fixes it."""
    if not isinstance(e, OSError) or e.errno is None:
        return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
    hints = {
        errno.EACCES: "choose a folder you can write to (or fix its permissions)",
        errno.EPERM: "choose a folder you can write to (or fix its permissions)",
        errno.EROFS: "the filesystem is read-only; choose another folder",
        errno.ENOSPC: "the disk is full; free some space",
        errno.EDQUOT: "the disk quota is used up; free some space",
        errno.EFBIG: "the file-size limit (ulimit -f) is too small for it; raise it",
    }
    text = e.strerror or os.strerror(e.errno)
    hint = hints.get(e.errno)
    return f"{text}; {hint}" if hint else text


def write_error(what: str, path: str | Path, e: BaseException, after: str = "") -> WriteError:
    """``WriteError('cannot write {what} {path}: {cause}{after}')``."""
    return WriteError(f"cannot write {what} {path}: {os_cause(e)}{after}")


class _Recorder(io.RawIOBase):
    """A writable file that remembers the ``OSError`` its writes raised: torch.save reports a
    failed write as a ``RuntimeError`` from its C++ zip writer, without the cause."""

    def __init__(self, f: Any) -> None:
        self.f = f
        self.error: OSError | None = None

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        try:
            return self.f.write(b)
        except OSError as e:
            self.error = e
            raise

    def flush(self) -> None:
        self.f.flush()


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """``torch.save`` through a temporary file and a rename: a run killed while saving leaves
    the previous checkpoint intact. A failed write (disk full, file-size limit, permissions)
    raises a one-line ``WriteError`` naming the file and the cause."""
    recorder: list[_Recorder] = []

    def write(f: Any) -> None:
        recorder.append(_Recorder(f))
        torch.save(state, recorder[0])  # type: ignore[arg-type]  # a file object all the same

    try:
        atomic_write_bytes(path, write)
    except (OSError, RuntimeError) as e:
        cause = recorder[0].error if recorder and recorder[0].error is not None else e
        kept = " (the previous checkpoint is intact)" if Path(path).exists() else ""
        raise write_error("checkpoint", path, cause, kept) from None


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint as data only (``weights_only=True``): tensors and plain containers.

    A file that carries anything else (a pickled class or callable, as a checkpoint written by
    untrusted code might) is refused before any of it runs.
    """
    path = Path(path)
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"Checkpoint {path} is not a file torch.save writes (not a zip archive: damaged, cut short or "
            "another kind of file), so it was not loaded; delete it to start over, or point --out at another folder."
        )
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as e:
        del e
        raise ValueError(
            f"Checkpoint {path} holds Python objects other than tensors and plain containers, so it was not "
            "loaded and nothing in it ran. Checkpoints of this package hold data only: use one written "
            "by this package, or delete it and start over."
        ) from None
    except Exception as e:
        raise ValueError(
            f"Checkpoint {path} cannot be read ({type(e).__name__}: {first_line(e)}). It is not a checkpoint of this "
            "package or it is damaged; delete it to start over, or point --out at another folder."
        ) from None
