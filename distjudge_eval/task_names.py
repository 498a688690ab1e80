"""Task names checked before anything heavy runs: unknown names fail fast with close matches.

Both ``distjudge eval`` and the trainers call :func:`check_task_names` before a model loads, so
a typo costs a second, not a minute of model loading and a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from distjudge_eval.errors import UserError
from distjudge_eval.paths import tasks_dir


def include_paths(user_paths: Sequence[str | Path] = ()) -> list[str]:
    """Our task folder first, then the user's folders (each must exist)."""
    paths = [str(tasks_dir())]
    for path in user_paths:
        folder = Path(path).expanduser()
        if not folder.exists():
            raise UserError(f"--include_path {path}: no such file or folder")
        paths.append(str(folder.resolve()))
    return paths


@lru_cache(maxsize=8)
def _manager(paths: tuple[str, ...], include_defaults: bool) -> Any:
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=list(paths), include_defaults=include_defaults)


def task_manager(user_paths: Sequence[str | Path] = (), include_defaults: bool = True) -> Any:
    """An lm-eval TaskManager that sees our tasks and the user's folders (built once)."""
    return _manager(tuple(include_paths(user_paths)), include_defaults)


def check_task_names(
    names: Sequence[str], user_paths: Sequence[str | Path] = (), include_defaults: bool = True
) -> None:
    """Raise a one-line :class:`UserError` for every name lm-eval would not find."""
    manager = task_manager(user_paths, include_defaults)
    known = set(manager.all_tasks)
    unknown = [n for n in names if n not in known and not _matches_pattern(n, known)]
    if not unknown:
        return
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
        hints.append(f"{name!r}" + (f" (did you mean {', '.join(close)}?)" if close else ""))
    raise UserError(
        f"unknown task {'; '.join(hints)}: list ours with `distjudge data info`, or add your "
        "task folder with --include_path DIR"
    )


def _matches_pattern(name: str, known: set[str]) -> bool:
    """lm-eval accepts shell-style patterns (``distjudge_summeval_*``) and YAML paths."""
    import fnmatch

    if any(ch in name for ch in "*?[") and fnmatch.filter(known, name):
        return True
    return Path(name).suffix in {".yaml", ".yml"} and Path(name).is_file()
