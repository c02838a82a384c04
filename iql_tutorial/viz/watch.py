"""``python -m iql_tutorial watch RUN_DIR``: a run's final policy, rendered, each episode's score printed.

RUN_DIR is a folder of ``train`` (its ``checkpoint.pt``) or of ``naive`` (its ``naive_policy.pt``),
or a policy file (``.pt``, see ``runs.policies``). Episodes start from ``reset(seed=SEED + i)``
and act with the policy's mode, as the evaluation does; they are rendered offscreen every
``--every`` steps and written one after another into ``--out`` (``.mp4`` or ``.gif``; default
RUN_DIR/watch.mp4). MuJoCo needs an offscreen backend: ``MUJOCO_GL=egl`` is set when nothing is
and there is no display. Every failure is one line and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from iql_tutorial.runs.policies import load_policy
from iql_tutorial.viz.behaviour import (
    DEFAULT_SIZE,
    VIDEO_SUFFIXES,
    Episode,
    RenderError,
    ensure_render_backend,
    env_info,
    no_backend_message,
    rollout,
    save_frames,
    video_frames,
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m iql_tutorial watch", description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", help="a run folder (train or naive) or a policy file (.pt)")
    p.add_argument("--episodes", type=int, default=1, help="episodes to render (default 1)")
    p.add_argument("--out", default=None, help="the video: FILE.mp4 or FILE.gif (default RUN_DIR/watch.mp4)")
    p.add_argument("--seed", type=int, default=0, help="episode i starts from reset(seed=SEED + i)")
    p.add_argument("--every", type=int, default=4, help="render every this many environment steps (default 4)")
    p.add_argument("--fps", type=int, default=15, help="frames per second of the video (default 15)")
    p.add_argument("--size", type=int, default=DEFAULT_SIZE, help="frame width and height in pixels")
    return p


def watch(run_dir: str | Path, episodes: int = 1, out: str | Path | None = None, seed: int = 0, every: int = 4,
          fps: int = 15, size: int = DEFAULT_SIZE, say=print) -> tuple[Path, list[Episode]]:  # fmt: skip
    """Render ``episodes`` episodes of the run's final policy into ``out``; returns it and the episodes."""
    run_dir = Path(run_dir)
    target = Path(out) if out is not None else (run_dir if run_dir.is_dir() else run_dir.parent) / "watch.mp4"
    if target.suffix.lower() not in VIDEO_SUFFIXES:
        raise ValueError(f"--out {target}: unknown suffix {target.suffix or '(none)'!r}; use .mp4 or .gif.")
    for name, value in (("--episodes", episodes), ("--every", every), ("--fps", fps), ("--size", size)):
        if value < 1:
            raise ValueError(f"{name} {value} must be a positive integer.")
    policy = load_policy(run_dir)
    if not policy.dataset:
        raise ValueError(f"{run_dir}: the policy names no dataset, so there is no environment to render.")
    info = env_info(policy.dataset)
    eps = []
    for i in range(episodes):
        ep = rollout(policy, seed=seed + i, info=info, render_every=every, size=size,
                     label=f"{policy.label} episode {i + 1}")  # fmt: skip
        score = f", normalized score {ep.score:.1f}" if ep.score is not None else ""
        say(f"episode {i + 1} (seed {seed + i}): return {ep.ret:.1f}{score}, {ep.length} steps")
        eps.append(ep)
    _write_sequence(eps, target, fps)
    say(f"wrote {target} ({sum(len(e.frames) for e in eps)} frames, {target.stat().st_size / 1e3:.0f} kB)")
    return target, eps


def _write_sequence(eps: list[Episode], target: Path, fps: int) -> None:
    """Episodes one after another in one video, each frame under its episode's title."""
    save_frames([f for e in eps for f in video_frames([e])], target, fps)


def main(argv: list[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    ensure_render_backend()
    warnings.filterwarnings("ignore", module="glfw")  # its warnings come before the one-line error
    try:
        watch(ns.run_dir, ns.episodes, ns.out, ns.seed, ns.every, ns.fps, ns.size)
    except (RenderError, ValueError, FileNotFoundError, OSError) as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except (ImportError, RuntimeError) as e:  # MuJoCo refusing its MUJOCO_GL, at import or at render
        if "MUJOCO_GL" in str(e) or "GL" in type(e).__name__ or "EGL" in str(e):
            print(f"error: {no_backend_message(e)}", file=sys.stderr)
            return 2
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
