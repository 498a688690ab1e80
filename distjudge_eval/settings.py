"""Where the data lives and how strict loading is: one place for the user-facing settings."""

from __future__ import annotations

import os
from pathlib import Path

from distjudge_eval.errors import UserError

DATA_DIR_ENV = "DISTJUDGE_DATA_DIR"
STRICT_ENV = "DISTJUDGE_STRICT"
DEFAULT_DATA_DIR = Path("~/.cache/distjudge/data").expanduser()


class DataDirError(UserError, FileNotFoundError):
    """The data dir (or a file in it) is missing: say where we looked and how to fix it."""


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """An explicit path wins, then $DISTJUDGE_DATA_DIR, then the ``distjudge data fetch`` cache."""
    if data_dir:
        path, origin = Path(data_dir).expanduser(), "the data_dir setting"
    elif os.environ.get(DATA_DIR_ENV):
        path, origin = Path(os.environ[DATA_DIR_ENV]).expanduser(), f"${DATA_DIR_ENV}"
    else:
        path, origin = DEFAULT_DATA_DIR, "the default location"
    if not path.is_dir():
        raise DataDirError(
            f"data dir {path} (from {origin}) does not exist: set ${DATA_DIR_ENV} or pass "
            f"--data_dir to a folder holding snli/, summeval/, mt_bench/ (mnli/), or run "
            f"`distjudge data fetch` to download the originals to {DEFAULT_DATA_DIR}"
        )
    return path


def strict_from_env() -> bool:
    return os.environ.get(STRICT_ENV, "").strip().lower() in {"1", "true", "yes", "on"}
