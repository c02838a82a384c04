"""Shared pytest configuration: only the markers of the test suite."""


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "book: builds the Jupyter Book (executing its notebooks with IQL_QUICK=1) and checks the "
        "rendered pages in headless Chromium; deselect with -m 'not book'",
    )


import contextlib  # noqa: E402
import os  # noqa: E402

import pytest  # noqa: E402


@contextlib.contextmanager
def minari_path(root):
    """Point MINARI_DATASETS_PATH at ``root`` for the duration, then restore it, so nothing
    leaks into later tests or into the notebooks nbmake runs in the same session."""
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    try:
        yield root
    finally:
        if old is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


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
