"""Fixtures the end-to-end files share (each xdist worker builds its own copy)."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_support import data_with_mnli as make_data_with_mnli


@pytest.fixture(scope="module")
def data_with_mnli(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """The real data plus an MNLI-format file built from SNLI rows."""
    return make_data_with_mnli(tmp_path_factory.mktemp("data"), data_dir)
