"""A task's items, from its :class:`DataSpec` and the run's settings (data dir, strict).

``load_items`` is what the trainer, ``data info`` and the task class use; results are cached per
(spec, data dir, strict), so building a task twice in one process reads its files once.
Relative data paths are looked up in the data dir, then beside the task's YAML.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

from distjudge_eval.data.items import SkipLog
from distjudge_eval.data.jsonl import read_rows
from distjudge_eval.data.rows import build_items
from distjudge_eval.data.spec import DataSpec
from distjudge_eval.errors import UserError
from distjudge_eval.settings import DataDirError, resolve_data_dir, strict_from_env, truthy

logger = logging.getLogger("distjudge")


def resolve_data_file(
    spec: DataSpec, data_dir: str | Path | None, config_source: str | None
) -> Path:
    """The first of ``spec.data_files`` that exists: absolute, in the data dir, or by the YAML."""
    yaml_dir = _yaml_dir(config_source)
    ours = built_in(yaml_dir)
    root: Path | None = None
    root_error: DataDirError | None = None
    if any(not Path(f).expanduser().is_absolute() for f in spec.data_files):
        try:
            root = resolve_data_dir(data_dir)
        except DataDirError as exc:
            root_error = exc
    looked: list[str] = []
    for name in spec.data_files:
        for candidate in _candidates(name, root, yaml_dir, ours):
            if candidate.exists():
                return candidate
            looked.append(str(candidate))
    if root_error is not None and not looked:
        raise root_error
    name = spec.data_files[0]
    if ours:
        fix = (
            f"point --data_dir at the folder that holds {name}, or run "
            f"`distjudge data fetch --datasets {Path(name).parts[0]}`"
        )
    else:  # a user's task: the data dir is only one of the places, and may not exist at all
        no_dir = " (there is no data dir)" if root_error is not None else ""
        fix = f"put {name} beside the task's YAML, or point --data_dir at the folder that holds it"
        looked[-1] += no_dir
    raise DataDirError(f"data file not found: looked for {', '.join(looked) or name}; {fix}")


def local_data_file(spec: DataSpec, config_source: str | None) -> Path | None:
    """The file :func:`resolve_data_file` finds when there is no data dir, or None: the task
    then needs the data dir."""
    yaml_dir = _yaml_dir(config_source)
    ours = built_in(yaml_dir)
    found = (c for n in spec.data_files for c in _candidates(n, None, yaml_dir, ours))
    return next((c for c in found if c.exists()), None)


def _candidates(name: str, root: Path | None, yaml_dir: Path | None, ours: bool) -> list[Path]:
    """Where one data file may lie, in lookup order: as given if absolute, else in the data dir,
    then beside a user's YAML (a built-in task's data lives only in the data dir)."""
    path = Path(name).expanduser()
    if path.is_absolute():
        return [path]
    return [folder / path for folder in (root, None if ours else yaml_dir) if folder is not None]


def _yaml_dir(config_source: str | None) -> Path | None:
    return Path(config_source).parent if config_source and config_source != "inline" else None


def built_in(yaml_dir: Path | None) -> bool:
    """Whether a task's YAML is one of ours (shipped in ``distjudge_tasks``)."""
    from distjudge_eval.paths import tasks_dir

    return yaml_dir is not None and tasks_dir().resolve() in yaml_dir.resolve().parents


def load_items(
    spec: DataSpec,
    data_dir: str | Path | None = None,
    strict: bool | None = None,
    config_source: str | None = None,
) -> list[dict[str, Any]]:
    """All items of a task (both splits); its skipped rows are reported once per call."""
    return load_with_skips(spec, data_dir, strict, config_source)[0]


def load_with_skips(
    spec: DataSpec,
    data_dir: str | Path | None = None,
    strict: bool | None = None,
    config_source: str | None = None,
) -> tuple[list[dict[str, Any]], SkipLog]:
    """Items and the skip counts per reason (read once per process and setting)."""
    path = resolve_data_file(spec, data_dir, config_source)
    strict = strict_from_env() if strict is None else truthy(strict)
    items, skips = _load_cached(spec, str(path), strict, spec.data_files[0])
    return items, skips


@functools.lru_cache(maxsize=32)
def _load_cached(
    spec: DataSpec, path: str, strict: bool, source: str
) -> tuple[list[dict[str, Any]], SkipLog]:
    skips = SkipLog(source=source, strict=strict)
    items = _read(spec, Path(path), skips)
    if not items:
        raise UserError(f"{source}: no usable items in {path} ({skips.summary()})")
    # Reported once per read (the result is cached), not once per caller.
    (logger.warning if skips.counts else logger.info)(f"{skips.summary()}; kept {len(items)} items")
    if spec.order == "swapped":
        from distjudge_eval.pairwise import swap_item

        if len(spec.labels) not in (2, 3) or not {"answer_a", "answer_b"} <= set(items[0]):
            raise UserError(
                f"{source}: order swapped needs a pairwise task: labels (A, B[, tie]) and "
                "fields answer_a, answer_b"
            )
        items = [swap_item(it) for it in items]
    return items, skips


def _read(spec: DataSpec, path: Path, skips: SkipLog) -> list[dict[str, Any]]:
    if spec.reader == "rows":
        return build_items(read_rows(path, skips), spec, skips)
    if spec.reader == "summeval":
        from distjudge_eval.data.summeval import load_summeval

        opts = spec.option_map
        if "dimension" not in opts:
            raise UserError("reader summeval needs dataset_kwargs.dimension")
        return load_summeval(path, opts["dimension"], skips, opts.get("raters", "all"))  # type: ignore[arg-type]
    from distjudge_eval.data.mtbench import load_mtbench

    return load_mtbench(path, skips)


def task_dataset(spec: DataSpec, **settings: Any):
    """train/test ``datasets.Dataset`` splits of a task, for lm-eval's ``custom_dataset``."""
    import dataclasses

    import datasets

    from distjudge_eval.data.spec import OPTION_KEYS

    # Reader options may also come from --metadata (e.g. {"raters": "experts"}).
    options = {**spec.option_map, **{k: str(settings[k]) for k in OPTION_KEYS if k in settings}}
    spec = dataclasses.replace(spec, options=tuple(sorted(options.items())))
    items = load_items(
        spec,
        data_dir=settings.get("data_dir"),
        strict=settings.get("strict"),
        config_source=settings.get("config_source"),
    )
    if any(isinstance(v, float) for it in items for v in it["votes"]):
        items = [{**it, "votes": [float(v) for v in it["votes"]]} for it in items]
    return datasets.DatasetDict(
        {
            split: datasets.Dataset.from_list([it for it in items if it["split"] == split])
            for split in ("train", "test")
        }
    )
