"""Reading lm-eval output folders: the per-sample rows of every task, one job, one home.

``compare``, ``position_bias`` and ``sweep`` read runs through here. Rows stored before a
metric existed (e.g. runs made before ``kl_worst_δ``) gain it from the row's own scores
(:func:`distjudge_eval.metrics.metrics_from_sample`), so old and new runs compare like for like.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distjudge_eval.metrics import METRICS, metrics_from_sample

NOT_BACKFILLED = ("label_mass", "parse_fail", "truncated")


@dataclass
class Run:
    """One lm-eval output: per task, per doc_id, the per-sample record."""

    name: str
    samples: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)


SAMPLES = "**/samples_*.jsonl*"


def sample_files(folder: Path, pattern: str = SAMPLES) -> list[Path]:
    """lm-eval's per-sample files under ``folder`` (``.jsonl`` or ``.jsonl.gz``), sorted."""
    return sorted(p for p in Path(folder).glob(pattern) if p.name.endswith((".jsonl", ".jsonl.gz")))


def judge_folders(folder: Path, pattern: str = SAMPLES) -> dict[str, Path]:
    """The judges an output folder holds, by display name. lm-eval writes each run to
    ``<output_path>/<model name, "/" written "__">/``, so one ``--output_path`` used for a raw
    judge and its fine-tune holds two such folders: each is a judge of its own. The name is
    the model name's last part (``__tmp__runs__tox`` -> ``tox``), or the whole folder name
    where two would share it."""
    folder = Path(folder)
    parents = sorted({p.parent for p in sample_files(folder, pattern)})
    short = [p.name.rsplit("__", 1)[-1] or p.name for p in parents]
    if len(set(short)) < len(short):
        short = [p.relative_to(folder).as_posix() or folder.name for p in parents]
    return dict(zip(short, parents))


def read_run(folder: Path, name: str | None = None, pattern: str = SAMPLES) -> Run:
    """Per-sample rows of every task in an lm-eval output folder (``.jsonl`` or ``.jsonl.gz``)."""
    folder = Path(folder)
    files = sample_files(folder, pattern)
    if not files:
        raise FileNotFoundError(f"{folder}: no samples_*.jsonl (run lm-eval with --log_samples)")
    run = Run(name or folder.name)
    for path in files:
        task = path.name[len("samples_") :].rsplit("_", 1)[0]
        rows = {}
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt") as fh:
            for line in fh:
                row = json.loads(line)
                if "kl" in row:
                    rows[int(row["doc_id"])] = _backfill(row)
        if rows:  # a later file of the same task (a rerun) replaces an earlier one
            run.samples[task] = rows
    return run


def _backfill(row: dict[str, Any]) -> dict[str, Any]:
    """Registry metrics missing from an older row, recomputed from its stored scores."""
    # label_mass, parse_fail: one readout only; truncated: not recomputable (older rows lack it)
    if all(m.name in row for m in METRICS if m.name not in NOT_BACKFILLED):
        return row
    fresh = metrics_from_sample(row)
    return {**fresh, **{k: v for k, v in row.items() if k in fresh or k not in fresh}}
