"""Benchmarks by name: where their files sit in the data dir, their label set, their loader.

``load_items`` is what the trainer and the CLI use; ``load_task_dataset`` is the lm-eval
``custom_dataset`` hook (train/test ``datasets.Dataset`` splits).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distjudge_eval.data.items import SkipLog
from distjudge_eval.data.mtbench import load_mtbench
from distjudge_eval.data.nli import load_nli
from distjudge_eval.data.summeval import DIMENSIONS, load_summeval
from distjudge_eval.labels import LIKERT_5, NLI, PAIRWISE, LabelSet
from distjudge_eval.settings import DataDirError, resolve_data_dir, strict_from_env


@dataclass(frozen=True)
class Benchmark:
    name: str
    label_set: LabelSet
    load: Callable[[Path, SkipLog, dict[str, Any]], list[dict[str, Any]]]


def _first_existing(folder: Path, names: tuple[str, ...]) -> Path:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise DataDirError(f"none of {names} found in {folder}: run `distjudge data fetch`")


def _load_snli(root: Path, skips: SkipLog, opts: dict[str, Any]) -> list[dict[str, Any]]:
    names = ("snli_1.0_dev.jsonl", "snli_1.0_dev.jsonl.gz")
    path = Path(opts["file"]) if opts.get("file") else _first_existing(root / "snli", names)
    return load_nli(path, skips)


def _load_mnli(root: Path, skips: SkipLog, opts: dict[str, Any]) -> list[dict[str, Any]]:
    names = ("multinli_1.0_dev_matched.jsonl", "multinli_1.0_dev_matched.jsonl.gz")
    path = Path(opts["file"]) if opts.get("file") else _first_existing(root / "mnli", names)
    return load_nli(path, skips)


def _load_summeval(root: Path, skips: SkipLog, opts: dict[str, Any]) -> list[dict[str, Any]]:
    if "dimension" not in opts:
        raise ValueError(f"SummEval needs a dimension, one of {DIMENSIONS}")
    return load_summeval(root / "summeval", opts["dimension"], skips, opts.get("raters", "all"))


def _load_mtbench(root: Path, skips: SkipLog, opts: dict[str, Any]) -> list[dict[str, Any]]:
    return load_mtbench(root / "mt_bench", skips)


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark("snli", NLI, _load_snli),
        Benchmark("mnli", NLI, _load_mnli),
        Benchmark("summeval", LIKERT_5, _load_summeval),
        Benchmark("mtbench", PAIRWISE, _load_mtbench),
    )
}
OPTION_KEYS = ("dimension", "raters", "file")


def load_items(
    bench: str, data_dir: str | Path | None = None, strict: bool | None = None, **options: Any
) -> list[dict[str, Any]]:
    """All items of a benchmark (both splits), skips reported once per call."""
    if bench not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {bench!r}: expected one of {tuple(BENCHMARKS)}")
    root = resolve_data_dir(data_dir)
    strict = strict_from_env() if strict is None else bool(strict)
    opts = tuple(sorted((k, str(v)) for k, v in options.items() if k in OPTION_KEYS and v))
    items, summary, had_skips = _load_cached(bench, str(root), strict, opts)
    _report(summary, had_skips)
    return items


def _report(summary: str, had_skips: bool) -> None:
    from distjudge_eval.data.items import logger

    (logger.warning if had_skips else logger.info)(summary)


@functools.lru_cache(maxsize=16)
def _load_cached(
    bench: str, root: str, strict: bool, opts: tuple[tuple[str, str], ...]
) -> tuple[list[dict[str, Any]], str, bool]:
    label = bench + "".join(f" {k}={v}" for k, v in opts)
    skips = SkipLog(source=label, strict=strict)
    items = BENCHMARKS[bench].load(Path(root), skips, dict(opts))
    if not items:
        raise ValueError(f"{label}: no usable items in {root} ({skips.summary()})")
    return items, f"{skips.summary()}; kept {len(items)} items", bool(skips.counts)


def load_task_dataset(bench: str, **kwargs: Any):
    """lm-eval ``custom_dataset`` hook: metadata and dataset_kwargs arrive as keyword arguments.

    Keys it reads: ``data_dir``, ``strict``, the loader options ``dimension``, ``raters``,
    ``file``, and ``order`` (``swapped`` shows pairwise items with slots A and B exchanged).
    lm-eval merges other metadata (version, model args) in: those are ignored.
    """
    import datasets

    from distjudge_eval.pairwise import swap_item

    order = kwargs.get("order", "canonical")
    if order not in ("canonical", "swapped"):
        raise ValueError(f"order must be canonical or swapped, got {order!r}")
    if order == "swapped" and BENCHMARKS[bench].label_set is not PAIRWISE:
        raise ValueError(f"{bench} is not pairwise: it has no slot order to swap")
    items = load_items(
        bench,
        data_dir=kwargs.get("data_dir"),
        strict=kwargs.get("strict"),
        **{k: kwargs[k] for k in OPTION_KEYS if k in kwargs},
    )
    if order == "swapped":
        items = [swap_item(it) for it in items]
    return datasets.DatasetDict(
        {
            split: datasets.Dataset.from_list([it for it in items if it["split"] == split])
            for split in ("train", "test")
        }
    )
