"""Where the installed lm-eval task configs are (they ship as the ``distjudge_tasks`` package)."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def tasks_dir() -> Path:
    spec = importlib.util.find_spec("distjudge_tasks")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("distjudge_tasks is not installed: `pip install .`")
    return Path(next(iter(spec.submodule_search_locations)))
