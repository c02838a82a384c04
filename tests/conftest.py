"""Shared pytest configuration: only the markers of the test suite."""


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "book: builds the Jupyter Book (executing its notebooks with IQL_QUICK=1) and checks the "
        "rendered pages in headless Chromium; deselect with -m 'not book'",
    )


import os  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_minari(tmp_path_factory):
    """A temporary MINARI_DATASETS_PATH holding tiny random Pendulum datasets (see _tiny_data)."""
    from _tiny_data import make_pendulum_dataset

    root = tmp_path_factory.mktemp("minari")
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(root)
    make_pendulum_dataset("tests/pendulum/tiny-v0")
    make_pendulum_dataset("tests/pendulum/nan-v0", nan_episode=1)
    make_pendulum_dataset("tests/pendulum/short-v0", episodes=2, max_steps=30)
    yield root
    if old is None:
        del os.environ["MINARI_DATASETS_PATH"]
    else:
        os.environ["MINARI_DATASETS_PATH"] = old
