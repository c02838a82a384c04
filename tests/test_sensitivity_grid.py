"""tools/sensitivity_grid.py made chapter 7's committed tau x beta map with copies of the chapter's
``ExtraActor`` and ``train_sweep``. The copies must train what the chapter's code trains: both are
run here from the same seed on the same data, and every learner's parameters must be equal."""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import torch

from iql_tutorial import IQLAgent, IQLConfig
from iql_tutorial.core import losses
from iql_tutorial.core.update import ACTION_CLIP, cosine_lr
from iql_tutorial.data.loader import load_dataset

ROOT = Path(__file__).resolve().parents[1]


def chapter_functions() -> dict:
    """Chapter 7's ExtraActor and train_sweep, from the cells that define them on the page."""
    cells = json.loads((ROOT / "book" / "07_beyond_defaults.ipynb").read_text())["cells"]
    sources = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    wanted = [s for s in sources if s.startswith(("class ExtraActor", "def train_sweep"))]
    assert len(wanted) == 2, "chapter 7 no longer defines ExtraActor and train_sweep in cells of their own"
    names = {
        "copy": copy,
        "torch": torch,
        "losses": losses,
        "cosine_lr": cosine_lr,
        "ACTION_CLIP": ACTION_CLIP,
        "IQLAgent": IQLAgent,
        "IQLConfig": IQLConfig,
        "PAPER_HIDDEN": (256, 256),
        "tqdm": lambda iterable, **_: iterable,
    }
    for source in wanted:
        exec(compile(source, "07_beyond_defaults.ipynb", "exec"), names)
    return names


def tool_module():
    spec = importlib.util.spec_from_file_location("sensitivity_grid", ROOT / "tools" / "sensitivity_grid.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_tool_trains_what_chapter_7_trains(tiny_minari):
    ds = load_dataset("tests/pendulum/tiny-v0", device="cpu", reward_norm="locomotion")
    betas, steps, hidden = [3.0, 10.0, 0.0], 12, (16, 16)
    chapter = chapter_functions()["train_sweep"](ds, 0.7, betas, steps, hidden=hidden, seed=1, progress=False)
    tool = tool_module().train_sweep(ds, 0.7, betas, steps, hidden, 1)
    assert len(chapter) == len(tool) == len(betas)
    # the agent (value, critics, its actor) and each extra actor
    pairs = [(chapter[0].state_dict(), tool[0].state_dict())]
    pairs += [(a.actor.state_dict(), b.actor.state_dict()) for a, b in zip(chapter[1:], tool[1:], strict=True)]
    for mine, theirs in pairs:
        assert mine.keys() == theirs.keys()
        for key in mine:
            torch.testing.assert_close(mine[key], theirs[key], rtol=0, atol=0, msg=key)
    # and beta matters: each extra actor ends away from the agent's own (beta = 3) actor
    own = tool[0].actor.state_dict()
    for learner in tool[1:]:
        assert any(not torch.equal(v, own[k]) for k, v in learner.actor.state_dict().items())
