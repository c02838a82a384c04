"""What a trained agent does: rendered episodes, filmstrips, short videos, and Pendulum traces.

- ``rollout(policy, seed=...)``: one evaluation episode of a ``runs.policies.Policy`` (the mode
  action, as the package's evaluation) in the dataset's environment, rendered offscreen
  (``render_mode="rgb_array"``) every ``render_every`` steps: frames, return, normalized score;
- ``filmstrip(episodes, steps)``: frames at the same environment steps, one row per policy,
  each row labelled with the policy and its score;
- ``write_video(episodes, path)``: the episodes side by side, labelled, as an mp4 (imageio-ffmpeg,
  H.264, small and low fps) or a GIF; ``write_poster`` saves one still frame for it;
- ``video_html(path, alt, poster)``: the ``<video>`` element a notebook displays, the video and the
  poster embedded as base64 (the page needs no other file and no network), with a text alternative;
- ``pendulum_trace(policies, seed)`` and ``plot_pendulum_trace``: angle and torque against time
  from one start state; ``start_scores`` and ``typical_start`` choose that start by a stated rule
  (the start where every policy scores closest to its median).

MuJoCo renders offscreen through the backend named by ``MUJOCO_GL``: ``egl`` (a GPU, or Mesa's
software EGL) or ``osmesa``. ``ensure_render_backend()`` picks ``egl`` when nothing is set and there is
no display; ``RenderError`` says what to set when rendering fails.
"""

from __future__ import annotations

import base64
import contextlib
import html
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from iql_tutorial.runs.policies import Policy

DEFAULT_SIZE = 240  # frame width and height in pixels
LABEL_HEIGHT = 32  # the strip above each video panel that names the policy (a multiple of 16 with 240)
VIDEO_SUFFIXES = (".mp4", ".gif")
TRACKING_CAMERA = "track"  # the locomotion models' camera that follows the body


class RenderError(RuntimeError):
    """The environment could not be rendered: no backend, or an environment that cannot render."""


def ensure_render_backend() -> str | None:
    """Set ``MUJOCO_GL=egl`` when it is unset and there is no display (a headless machine); returns
    the backend in effect (None: MuJoCo's own default, a window through GLFW)."""
    if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
        os.environ["MUJOCO_GL"] = "egl"
    return os.environ.get("MUJOCO_GL")


def no_backend_message(cause: BaseException) -> str:
    """The one line for a MuJoCo renderer that cannot start."""
    now = os.environ.get("MUJOCO_GL")
    tried = f"MUJOCO_GL={now}" if now else "MUJOCO_GL unset (a window through GLFW)"
    why = " ".join(str(cause).split())[:160] or type(cause).__name__
    return (
        f"no rendering backend: {tried} failed ({why}); set MUJOCO_GL=egl (a GPU, or Mesa's software EGL) "
        "or, where OSMesa is installed, MUJOCO_GL=osmesa: e.g. MUJOCO_GL=egl python -m iql_tutorial watch RUN_DIR."
    )


@dataclass
class EnvInfo:
    """What a rollout needs from a dataset: a maker of its environment, the action bounds and the
    reference scores (from the dataset's metadata; its episodes are not read)."""

    dataset_id: str
    make: Callable[..., Any]
    low: np.ndarray
    high: np.ndarray
    ref_min_score: float | None = None
    ref_max_score: float | None = None

    def score(self, ret: float) -> float | None:
        if self.ref_min_score is None or self.ref_max_score is None:
            return None
        return 100.0 * (ret - self.ref_min_score) / (self.ref_max_score - self.ref_min_score)


def env_info(dataset_id: str) -> EnvInfo:
    """The dataset's evaluation environment, action bounds and reference scores."""
    import minari

    import iql_tutorial.envs  # noqa: F401  (registers the project's own environments)

    ds = minari.load_dataset(dataset_id)
    space = ds.spec.action_space
    meta = ds.storage.metadata

    def make(**kwargs: Any) -> Any:
        return ds.recover_environment(eval_env=True, **kwargs)

    return EnvInfo(dataset_id, make, np.asarray(space.low, dtype=np.float64), np.asarray(space.high, dtype=np.float64),
                   meta.get("ref_min_score"), meta.get("ref_max_score"))  # fmt: skip


def make_render_env(info: EnvInfo, size: int = DEFAULT_SIZE) -> Any:
    """The environment with ``render_mode="rgb_array"`` (frames ``size`` x ``size`` where it takes a
    size, as MuJoCo's do). ``RenderError`` when it cannot render (one line, with what to do)."""
    ensure_render_backend()
    try:
        with quiet_model_compiler():
            try:
                env = info.make(render_mode="rgb_array", width=size, height=size)
            except TypeError:  # an environment without width/height (classic control)
                return info.make(render_mode="rgb_array")
            if _has_camera(env, TRACKING_CAMERA):  # follow the body (Hopper, Walker2d, HalfCheetah), or it runs off
                env.close()
                env = info.make(render_mode="rgb_array", width=size, height=size, camera_name=TRACKING_CAMERA)
        return env
    except (ImportError, AttributeError, RuntimeError, OSError) as e:  # MuJoCo's GL backend, loaded with the env
        if os.environ.get("MUJOCO_GL") or "GL" in str(e):
            raise RenderError(no_backend_message(e)) from None
        raise


@contextlib.contextmanager
def quiet_model_compiler() -> Iterator[None]:
    """Silence file descriptor 2 while an environment is made: MuJoCo 4's compiler prints a
    deprecation ``WARNING`` about gymnasium's Hopper/Walker2d XML (``settotalmass``) straight to the
    process's stderr, which a notebook would show in the page. Python's own errors still raise."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no file descriptor 2 to silence
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _has_camera(env: Any, name: str) -> bool:
    """Whether a MuJoCo environment's model has a camera called ``name``."""
    model = getattr(env.unwrapped, "model", None)
    if model is None:
        return False
    import mujoco

    return int(mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, name)) >= 0


def _render(env: Any) -> np.ndarray:
    name = env.spec.id if env.spec else type(env).__name__
    try:
        frame = env.render()
    except ImportError as e:
        raise RenderError(f"environment {name} cannot render: {' '.join(str(e).split())[:160]}") from None
    except Exception as e:
        why = " ".join(str(e).split())[:160]
        if type(e).__name__ == "DependencyNotInstalled":
            raise RenderError(f"environment {name} cannot render: {why}") from None
        if "GL" in why or "display" in why.lower() or type(e).__name__ == "FatalError":
            raise RenderError(no_backend_message(e)) from None
        raise RenderError(f"environment {name} cannot render frames ({type(e).__name__}: {why})") from None
    if frame is None or np.asarray(frame).ndim != 3:
        raise RenderError(f"environment {name} cannot render frames (render() gave {type(frame).__name__}); make "
                          "it with render_mode='rgb_array', or choose a MuJoCo task, e.g. a Hopper dataset.")  # fmt: skip
    return np.asarray(frame, dtype=np.uint8)


@dataclass
class Episode:
    """One rendered evaluation episode of one policy."""

    label: str
    ret: float  # undiscounted return (sum of the environment's rewards)
    score: float | None  # normalized score (None: the dataset has no reference scores)
    length: int  # environment steps
    frames: np.ndarray  # [n, H, W, 3] uint8, rendered at frame_steps
    frame_steps: np.ndarray  # [n] environment step of each frame (0: after reset)
    observations: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # [length + 1, d]
    actions: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))  # [length, a], environment units

    @property
    def title(self) -> str:
        """The policy and how it did, e.g. ``IQL: score 63.2`` (or the return without a score)."""
        did = f"score {self.score:.1f}" if self.score is not None else f"return {self.ret:.1f}"
        return f"{self.label}: {did}"


def rollout(
    policy: Policy,
    seed: int = 0,
    info: EnvInfo | None = None,
    render_every: int | None = 1,
    size: int = DEFAULT_SIZE,
    max_steps: int | None = None,
    label: str | None = None,
) -> Episode:
    """One episode of ``policy`` (its mode action) from ``env.reset(seed=seed)``, rendered every
    ``render_every`` environment steps (None: no frames, the cheapest; a trace only).

    ``info`` defaults to the environment of the policy's dataset (``policy.dataset``)."""
    if info is None:
        if not policy.dataset:
            raise ValueError("the policy names no dataset: pass info=env_info(DATASET_ID).")
        info = env_info(policy.dataset)
    if render_every:
        env = make_render_env(info, size)
    else:
        with quiet_model_compiler():
            env = info.make()
    frames, steps = [], []
    try:
        obs, _ = env.reset(seed=seed)
        observations, actions = [np.asarray(obs, dtype=np.float64)], []
        if render_every:
            frames.append(_render(env))
            steps.append(0)
        ret, t, done = 0.0, 0, False
        while not done and (max_steps is None or t < max_steps):
            a = info.low + (np.clip(policy.act(np.asarray(obs, dtype=np.float32)), -1, 1) + 1) * 0.5 * (
                info.high - info.low
            )
            obs, r, term, trunc, _ = env.step(a.astype(env.action_space.dtype))
            t += 1
            ret += float(r)
            done = bool(term or trunc)
            observations.append(np.asarray(obs, dtype=np.float64))
            actions.append(a)
            if render_every and (t % render_every == 0 or done):
                frames.append(_render(env))
                steps.append(t)
    finally:
        env.close()
    empty = np.zeros((0, size, size, 3), dtype=np.uint8)
    return Episode(label or policy.label, ret, info.score(ret), t, np.stack(frames) if frames else empty,
                   np.asarray(steps, dtype=np.int64), np.stack(observations), np.stack(actions) if actions else
                   np.zeros((0, len(info.low))))  # fmt: skip


# --------------------------------------------------------------------------------------------
# Filmstrip
# --------------------------------------------------------------------------------------------
def frame_at(ep: Episode, step: int) -> np.ndarray | None:
    """The episode's frame at environment step ``step`` (the last one rendered at or before it);
    None once the episode has ended before ``step``."""
    if step > ep.length or not len(ep.frames):
        return None
    i = int(np.searchsorted(ep.frame_steps, step, side="right")) - 1
    return ep.frames[max(i, 0)]


def filmstrip(episodes: Sequence[Episode], steps: Sequence[int], dt: float | None = None, height: float = 1.3) -> Any:
    """Frames at the environment ``steps``, one row per episode labelled with its policy and score;
    a panel after an episode ended says at which step it ended. ``dt`` (seconds per environment
    step) adds the time under each column. The figure is about ``height * (len(steps) + 1)`` inches
    wide: five or six columns fit a book's text column with 9-point labels."""
    import matplotlib.pyplot as plt

    rows, cols = len(episodes), len(steps)
    fig, axes = plt.subplots(rows, cols, figsize=(height * cols, height * rows + 0.4), squeeze=False)
    for r, ep in enumerate(episodes):
        for c, step in enumerate(steps):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            img = frame_at(ep, step)
            if img is not None:
                ax.imshow(img)
            else:  # a blank panel of the frames' size, so that every panel has the same shape
                ax.imshow(np.full_like(ep.frames[0], 238) if len(ep.frames) else np.full((1, 1, 3), 238))
                ax.text(0.5, 0.5, f"ended at\nstep {ep.length}", ha="center", va="center", transform=ax.transAxes,
                        fontsize=9, color="0.3")  # fmt: skip
            if r == rows - 1:
                ax.set_xlabel(f"step {step}" + (f"\n{step * dt:.2f} s" if dt else ""), fontsize=9)
            if c == 0:
                ax.set_ylabel(ep.title.replace(": ", "\n"), fontsize=9, rotation=0, ha="right", va="center", labelpad=6)
    fig.tight_layout(w_pad=0.2, h_pad=0.3)
    return fig


# --------------------------------------------------------------------------------------------
# Video
# --------------------------------------------------------------------------------------------
def _label_strip(text: str, width: int) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (width, LABEL_HEIGHT), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    try:
        font: Any = ImageFont.load_default(size=16)
    except TypeError:  # an older Pillow: one bitmap size
        font = ImageFont.load_default()
    box = draw.textbbox((0, 0), text, font=font)
    draw.text(((width - (box[2] - box[0])) / 2, (LABEL_HEIGHT - (box[3] - box[1])) / 2 - box[1]), text,
              fill=(20, 20, 20), font=font)  # fmt: skip
    return np.asarray(img)


def video_frames(episodes: Sequence[Episode]) -> list[np.ndarray]:
    """The episodes side by side, frame by frame, each under a strip with its title. An episode
    that ended holds its last frame, greyed, while the others go on."""
    if not episodes or any(len(ep.frames) == 0 for ep in episodes):
        raise ValueError("every episode needs frames: roll out with render_every set.")
    strips = [_label_strip(ep.title, ep.frames.shape[2]) for ep in episodes]
    n = max(len(ep.frames) for ep in episodes)
    out = []
    for i in range(n):
        panels = []
        for ep, strip in zip(episodes, strips, strict=True):
            f = ep.frames[min(i, len(ep.frames) - 1)]
            if i >= len(ep.frames):
                f = (0.45 * f + 0.55 * 255).astype(np.uint8)
            panels.append(np.concatenate([strip, f], axis=0))
        out.append(np.concatenate(panels, axis=1))
    return out


def write_video(episodes: Sequence[Episode], path: str | Path, fps: int = 15) -> Path:
    """The episodes side by side as ``path``: ``.mp4`` (H.264 through imageio-ffmpeg, which ships
    its own ffmpeg) or ``.gif``. Keep ``fps`` low and frames small: a 240-pixel, 3-panel, 8-second
    mp4 is a few hundred kB."""
    return save_frames(video_frames(episodes), path, fps)


def save_frames(frames: Sequence[np.ndarray], path: str | Path, fps: int = 15) -> Path:
    """Frames ``[H, W, 3]`` uint8 as an ``.mp4`` (H.264, yuv420p: every browser plays it) or a ``.gif``."""
    path = Path(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise ValueError(f"{path}: unknown video suffix {path.suffix!r}; use .mp4 or .gif.")
    path.parent.mkdir(parents=True, exist_ok=True)
    import imageio.v2 as imageio

    if path.suffix.lower() == ".gif":
        imageio.mimsave(path, list(frames), duration=1000.0 / fps, loop=0)
    else:
        writer: Any = imageio.get_writer(path, fps=fps, codec="libx264", quality=6, pixelformat="yuv420p",
                                         macro_block_size=16, ffmpeg_log_level="error")  # fmt: skip
        with writer:
            for f in frames:
                writer.append_data(f)
    return path


def write_poster(episodes: Sequence[Episode], path: str | Path, at: float = 0.3) -> Path:
    """One still of the side-by-side video (``at``: the fraction of the longest episode) as a JPEG
    or PNG, for the ``<video>`` element's ``poster`` and for readers without video."""
    from PIL import Image

    frames = video_frames(episodes)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(frames[int(at * (len(frames) - 1))]).save(path, quality=80)
    return path


def _data_uri(path: Path) -> str:
    mime = {".mp4": "video/mp4", ".gif": "image/gif", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}
    return f"data:{mime[path.suffix.lower()]};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def video_html(path: str | Path, alt: str, poster: str | Path | None = None, embed: bool = True) -> str:
    """The HTML a notebook displays (``IPython.display.HTML``) for a video or an animated GIF.

    ``embed=True`` (the book's choice) puts the file into the page as base64: the page plays it from
    itself, offline, in JupyterLab and in the built book alike, at 4/3 of the file's size. ``embed=False``
    links ``path`` as given (relative to the page), for a file you place beside the page yourself.
    ``alt`` is the text alternative: the video's ``aria-label``, its fallback text, and the GIF's ``alt``.
    The element is as wide as the column at most (``max-width: 100%``)."""
    path = Path(path)
    src = _data_uri(path) if embed else path.as_posix()
    alt_attr = html.escape(alt, quote=True)
    style = "max-width: 100%; height: auto;"
    if path.suffix.lower() == ".gif":
        return f'<img src="{src}" alt="{alt_attr}" style="{style}">'
    poster_attr = ""
    if poster is not None:
        p = Path(poster)
        poster_attr = f' poster="{_data_uri(p) if embed else p.as_posix()}"'
    return (
        f'<video controls muted loop playsinline preload="metadata"{poster_attr} aria-label="{alt_attr}" '
        f'title="{alt_attr}" style="{style}"><source src="{src}" type="video/mp4">{html.escape(alt)}</video>'
    )


# --------------------------------------------------------------------------------------------
# Pendulum: angle and torque against time
# --------------------------------------------------------------------------------------------
def pendulum_angle(observations: np.ndarray) -> np.ndarray:
    """Pendulum-v1's angle theta in radians (0: upright), from its observation (cos, sin, theta dot)."""
    return np.arctan2(observations[:, 1], observations[:, 0])


def pendulum_trace(policies: Sequence[Policy], seed: int = 0, info: EnvInfo | None = None) -> list[Episode]:
    """One episode of each policy from the same start state (``reset(seed=seed)``), not rendered."""
    return [rollout(p, seed=seed, info=info, render_every=None) for p in policies]


def start_scores(policies: Sequence[Policy], seeds: Sequence[int], info: EnvInfo | None = None) -> np.ndarray:
    """Each policy's normalized score (its return where the dataset has no reference scores) from
    each start state ``reset(seed=s)``: ``[len(seeds), len(policies)]``, no rendering."""
    info = info if info is not None else env_info(str(policies[0].dataset))
    out = np.zeros((len(seeds), len(policies)))
    for i, s in enumerate(seeds):
        for j, p in enumerate(policies):
            ep = rollout(p, seed=s, info=info, render_every=None)
            out[i, j] = ep.score if ep.score is not None else ep.ret
    return out


def typical_start(scores: np.ndarray, seeds: Sequence[int]) -> int:
    """The start seed whose scores lie closest to every policy's median score over ``seeds`` (the
    sum over policies of the distance to the median, each in units of that policy's interquartile
    range): one episode that shows each policy as it usually does, chosen by a rule, not by eye."""
    med = np.median(scores, axis=0)
    iqr = np.subtract(*np.percentile(scores, [75, 25], axis=0))
    dist = (np.abs(scores - med) / np.where(iqr > 0, iqr, 1.0)).sum(axis=1)
    return int(seeds[int(np.argmin(dist))])


def plot_pendulum_trace(episodes: Sequence[Episode], dt: float = 0.05) -> Any:
    """The pendulum's distance from upright, ``|theta|`` in degrees (0: up, 180: hanging down; no
    jump where theta wraps at +-180), and the torque (N m) against time, one line per policy
    (Pendulum-v1 steps 0.05 s)."""
    import matplotlib.pyplot as plt

    fig, (ax_a, ax_u) = plt.subplots(2, 1, figsize=(7, 4.6), sharex=True)
    for ep in episodes:
        t = np.arange(len(ep.observations)) * dt
        ax_a.plot(t, np.degrees(np.abs(pendulum_angle(ep.observations))), label=ep.title)
        ax_u.step(t[:-1], ep.actions[:, 0], where="post", label=ep.title)
    ax_a.set_ylabel("angle from upright (deg)")
    ax_a.set_ylim(-5, 185)
    ax_a.set_yticks([0, 45, 90, 135, 180])
    ax_u.set_ylabel("torque (N m)")
    ax_u.set_xlabel("time (s)")
    ax_a.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(episodes), fontsize=9, frameon=False)
    fig.tight_layout()
    return fig
