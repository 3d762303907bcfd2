"""Shared fixtures: seeded synthetic data, a CLI runner with a fixed width, and the real-data switch."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

# Counts bad inputs and interruptions in the reliability tests; prints their summary line at the end of the run.
pytest_plugins = ["reliability_summary"]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def runner():
    from typer.testing import CliRunner

    return CliRunner(env={"COLUMNS": "120", "NO_COLOR": "1", "TERM": "dumb"})


@pytest.fixture
def cli_app():
    from embedkit_cli.main import app

    return app


@pytest.fixture(scope="session")
def real_data_root() -> Path:
    """The real data folder from `EMBEDKIT_DATA`; tests that need it are skipped without it."""
    root = os.environ.get("EMBEDKIT_DATA")
    if not root or not Path(root).is_dir():
        pytest.skip("EMBEDKIT_DATA is not set to a folder with the real CIFAR-10 / MNIST files")
    return Path(root)


@pytest.fixture(scope="session")
def chromium():
    """A headless Chromium (the system's, driven by Playwright), shared by the session's browser tests."""
    from browser_helpers import launch_chromium

    reason = "playwright is not installed: pip install -e '.[test]'"
    sync_api = pytest.importorskip("playwright.sync_api", reason=reason)
    with sync_api.sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()
