"""Every distjudge task a folder holds, read from its YAML alone (no model, no lm-eval build).

The list of benchmarks lives in one place, the task folders: ``data info`` and the tests find
tasks here instead of in a registry, so a new benchmark touches only its own folder.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from distjudge_eval.data.spec import DataSpec, parse_spec

TASK_CLASS = "distjudge_eval.task.DistributionTask"


@dataclass(frozen=True)
class TaskEntry:
    name: str
    yaml_path: Path
    spec: DataSpec
    output_type: str


def find_tasks(folders: Iterable[str | Path]) -> list[TaskEntry]:
    """Tasks whose YAML (after ``include:``) names :data:`TASK_CLASS`, sorted by name."""
    from lm_eval.tasks._yaml_loader import load_yaml

    found: dict[str, TaskEntry] = {}
    for folder in folders:
        folder = Path(folder)
        paths = [folder] if folder.is_file() else sorted(folder.rglob("*.yaml"))
        for path in paths:
            cfg = load_yaml(path, resolve_func=False)
            if not str(cfg.get("class", "")).endswith(TASK_CLASS) or "task" not in cfg:
                continue
            spec = parse_spec(dict(cfg.get("dataset_kwargs") or {}), cfg.get("doc_to_choice"))
            output_type = cfg.get("output_type", "multiple_choice")
            found[cfg["task"]] = TaskEntry(cfg["task"], path, spec, output_type)
    return [found[name] for name in sorted(found)]


def find_task(name: str, folders: Iterable[str | Path] = ()) -> TaskEntry:
    """One task by name, from our task folder and ``folders``."""
    from distjudge_eval.errors import UserError
    from distjudge_eval.paths import tasks_dir

    entries = {e.name: e for e in find_tasks([tasks_dir(), *folders])}
    if name not in entries:
        raise UserError(f"no distjudge task named {name!r}: see `distjudge data info`")
    return entries[name]


def load_task_items(
    name: str,
    data_dir: str | Path | None = None,
    strict: bool | None = None,
    folders: Iterable[str | Path] = (),
    **overrides: object,
) -> list[dict]:
    """A task's items (both splits) without lm-eval; ``overrides`` replace dataset_kwargs keys
    (e.g. ``raters="experts"``, or ``data_files`` pointing at another copy)."""
    from lm_eval.tasks._yaml_loader import load_yaml

    from distjudge_eval.data.load import load_items

    entry = find_task(name, folders)
    spec = entry.spec
    if overrides:
        cfg = load_yaml(entry.yaml_path, resolve_func=False)
        kwargs = {**(cfg.get("dataset_kwargs") or {}), **overrides}
        spec = parse_spec(kwargs, cfg.get("doc_to_choice"))
    return load_items(spec, data_dir, strict, config_source=str(entry.yaml_path))
