"""Shared fixtures. Prefect runs locally, quietly, with its database in a temporary folder."""

from __future__ import annotations

import os
import tempfile

# Before anything imports prefect: no telemetry (it can lock SQLite under pytest) and a private home.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="themes-prefect-"))
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

import pytest

from themes.config import shared_dir


@pytest.fixture(scope="session")
def shared():
    """The ../shared folder; skips the test when it is absent (a user's fresh clone)."""
    path = shared_dir()
    if path is None:
        pytest.skip("../shared is absent: real-corpus checks run in CI only.")
    return path
