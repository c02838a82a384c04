"""Shared pytest configuration: the markers of the test suite and the fixtures several files use
(plain helpers are in helpers.py)."""

import pytest
from helpers import minari_path, small_iql, train_config

from iql_tutorial.runs.train import train


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "book: builds the Jupyter Book (executing its notebooks with IQL_QUICK=1) and checks the "
        "rendered pages in headless Chromium; deselect with -m 'not book'",
    )


@pytest.fixture(scope="session")
def tiny_datasets_path(tmp_path_factory):
    """A folder of tiny random Pendulum datasets in Minari's layout (see _tiny_data), made once."""
    from _tiny_data import make_maze_dataset, make_pendulum_dataset

    root = tmp_path_factory.mktemp("minari")
    with minari_path(root):
        make_pendulum_dataset("tests/pendulum/tiny-v0")
        make_pendulum_dataset("tests/pendulum/nan-v0", nan_episode=1)
        make_pendulum_dataset("tests/pendulum/short-v0", episodes=2, max_steps=30)
        make_maze_dataset("tests/pointmaze/tiny-v0")
    return root


@pytest.fixture()
def tiny_minari(tiny_datasets_path):
    """MINARI_DATASETS_PATH set to the tiny datasets for one test."""
    with minari_path(tiny_datasets_path):
        yield tiny_datasets_path


@pytest.fixture(scope="module")
def offline_run(tiny_datasets_path, tmp_path_factory):
    """An offline run to fine-tune, made once per test file: 30 steps on tests/pendulum/short-v0
    (2 episodes of 30 steps: 60 offline transitions), small_iql(), no evaluation, rows every 10.
    test_resume.py overrides it with its own."""
    out = tmp_path_factory.mktemp("offline") / "run"
    cfg = train_config(out, dataset="tests/pendulum/short-v0", steps=30, eval_episodes=0, log_every=10,
                       iql=small_iql())  # fmt: skip
    with minari_path(tiny_datasets_path):
        train(cfg, progress=False)
    return out
