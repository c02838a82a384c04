"""Shared pytest configuration: only the markers of the test suite."""


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "book: builds the Jupyter Book (executing its notebooks with IQL_QUICK=1) and checks the "
        "rendered pages in headless Chromium; deselect with -m 'not book'",
    )
