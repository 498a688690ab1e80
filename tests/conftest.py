"""Shared fixtures: the real data dir and the embedded model location."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _data_dir() -> Path:
    env = os.environ.get("DISTJUDGE_DATA_DIR")
    return Path(env).resolve() if env else REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = _data_dir()
    if not path.is_dir():
        pytest.fail(f"real data dir not found at {path}: set DISTJUDGE_DATA_DIR")
    return path
