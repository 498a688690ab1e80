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
    """An explicit path wins, then $DISTJUDGE_DATA_DIR, then the ``distjudge data fetch`` cache.

    The error names where the missing path came from, so it never blames a setting the user
    did not make.
    """
    holding = "a folder holding snli/, summeval/, mt_bench/, chaosnli/ (or your data files)"
    if data_dir:
        path = Path(data_dir).expanduser()
        fix = f"point --data_dir (metadata data_dir) at {holding}"
    elif os.environ.get(DATA_DIR_ENV):
        path = Path(os.environ[DATA_DIR_ENV]).expanduser()
        fix = f"set ${DATA_DIR_ENV} to {holding}, or pass --data_dir"
    else:
        path = DEFAULT_DATA_DIR
        fix = f"pass --data_dir (or set ${DATA_DIR_ENV}) to {holding}"
    if not path.is_dir():
        origin = (
            "given by --data_dir"
            if data_dir
            else f"from ${DATA_DIR_ENV}"
            if os.environ.get(DATA_DIR_ENV)
            else "the default"
        )
        raise DataDirError(
            f"data dir {path} ({origin}) does not exist: {fix}, or run "
            f"`distjudge data fetch --data_dir {path}` to download the originals there"
        )
    return path


def check_named_data_dir(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The data dir the user named (--data_dir or $DISTJUDGE_DATA_DIR), which must exist; None
    when neither is set. The fetch-cache default is not checked up front: a user's own task reads
    its file beside its YAML and needs no data dir, and a task that does need one fails when
    its file is looked up, naming both places."""
    if data_dir or os.environ.get(DATA_DIR_ENV):
        return resolve_data_dir(data_dir)
    return None


def truthy(value: object) -> bool:
    """A flag from text ("1", "true", "yes", "on") or from a YAML/JSON bool."""
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


def strict_from_env() -> bool:
    return truthy(os.environ.get(STRICT_ENV, ""))
