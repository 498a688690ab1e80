"""Judges that read nothing, written out like lm-eval runs so ``distjudge compare`` reads them.

The **prior** baseline answers every item with the same q: the mean human p over the train split.
Any judge worth running should beat it; a fine-tuned judge that only matches it has learnt the
label frequencies, not the items. Its q is scored with exactly the metric code a model's is
(``item_metrics`` on log q as the label scores), and written as a ``results_*.json`` plus a
``samples_<task>_*.jsonl`` whose rows carry ``doc``, ``filtered_resps`` and every metric.
"""

from __future__ import annotations

import argparse
import gzip
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from distjudge_eval.metrics import METRICS, expected_calibration_error, item_metrics


def prior_distribution(train_items: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Mean human p over the train items (all must share one label set size)."""
    if not train_items:
        raise ValueError("the prior baseline needs at least one train item")
    ps = [np.asarray(it["p"], dtype=np.float64) for it in train_items]
    sizes = {p.size for p in ps}
    if len(sizes) != 1:
        raise ValueError(f"train items have different label counts {sorted(sizes)}")
    return np.mean(ps, axis=0)


def score_items(
    test_items: Sequence[Mapping[str, Any]], q: Sequence[float]
) -> list[dict[str, Any]]:
    """Per-sample rows for a judge that answers q on every item, metrics as for any run.

    Zeros in q (a label nobody voted for in train) are scored through the metrics' log-q floor.
    """
    qa = np.asarray(q, dtype=np.float64)
    with np.errstate(divide="ignore"):
        log_q = np.log(qa / qa.sum())
    scores = log_q.tolist()
    rows = []
    for i, doc in enumerate(test_items):
        metrics = item_metrics(doc["p"], scores, str(doc["id"]), order=doc.get("order"))
        rows.append(
            {
                "doc_id": i,
                "doc": dict(doc),
                "filtered_resps": [[repr(s), "False"] for s in scores],
                **metrics,
            }
        )
    return rows


def aggregate(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """lm-eval-style ``"<metric>,none"`` means (and stderr) of the rows; ECE over all items."""
    out: dict[str, float] = {}
    for m in METRICS:
        if "logprob" not in m.readouts or m.name not in rows[0]:
            continue
        if m.aggregation == "ece":
            out["ece,none"] = expected_calibration_error([r["ece"] for r in rows])
            out["ece_stderr,none"] = float("nan")
            continue
        vals = np.array([float(r[m.name]) for r in rows])
        out[f"{m.name},none"] = float(vals.mean())
        stderr = vals.std(ddof=1) / np.sqrt(vals.size) if vals.size > 1 else float("nan")
        out[f"{m.name}_stderr,none"] = float(stderr)
    return out


def write_run(
    out_dir: str | Path, task_rows: Mapping[str, Sequence[Mapping[str, Any]]], model: str
) -> Path:
    """Write ``results_<stamp>.json`` and one ``samples_<task>_<stamp>.jsonl.gz`` per task."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H-%M-%S.%f")  # no "_": compare splits
    results, n_samples = {}, {}
    for task, rows in task_rows.items():
        if not rows:
            continue
        with gzip.open(out / f"samples_{task}_{stamp}.jsonl.gz", "wt") as fh:
            for row in rows:
                fh.write(json.dumps(row) + "\n")
        results[task] = {"alias": task, **aggregate(rows)}
        n_samples[task] = {"original": len(rows), "effective": len(rows)}
    path = out / f"results_{stamp}.json"
    higher = {m.name: m.higher_is_better for m in METRICS}
    payload = {
        "results": results,
        "higher_is_better": {t: higher for t in results},
        "n-samples": n_samples,
        "config": {"model": model},
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def prior_baseline(
    train_items: Sequence[Mapping[str, Any]],
    test_items: Sequence[Mapping[str, Any]],
    task: str,
    out_dir: str | Path | None = None,
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """(prior q, per-sample rows); with ``out_dir``, also written as an lm-eval-shaped run."""
    q = prior_distribution(train_items)
    rows = score_items(test_items, q)
    if out_dir is not None:
        write_run(out_dir, {task: rows}, model="prior")
    return q, rows


def prior_kl_of_run(
    results_file: Path, data_dir: str | Path | None, folders: Sequence[str | Path] = ()
) -> dict[str, float]:
    """Mean KL of the prior judge on exactly the items a run scored, per distjudge task of the
    run (tasks that are not ours, or whose data cannot be read, are left out)."""
    from distjudge_eval.data.catalog import find_tasks, load_task_items
    from distjudge_eval.errors import UserError
    from distjudge_eval.metrics import kl_divergence
    from distjudge_eval.paths import tasks_dir
    from distjudge_eval.runs import read_run

    stamp = results_file.stem[len("results_") :]
    try:
        run = read_run(results_file.parent, pattern=f"samples_*_{stamp}.jsonl*")
    except FileNotFoundError:
        return {}
    ours = {e.name for e in find_tasks([tasks_dir(), *folders])}
    out = {}
    for task, rows in run.samples.items():
        if task not in ours:
            continue
        try:
            items = load_task_items(task, data_dir, folders=folders)
        except UserError:
            continue
        q = prior_distribution([it for it in items if it["split"] == "train"])
        log_q = np.log(np.maximum(q, 1e-300))
        out[task] = float(np.mean([kl_divergence(r["doc"]["p"], log_q) for r in rows.values()]))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``distjudge baseline --tasks T1,T2 --out DIR``: the prior judge of each task, no model."""
    from distjudge_eval.data.catalog import find_task, load_task_items

    parser = argparse.ArgumentParser(
        prog="distjudge baseline",
        description="Score the prior judge (q = mean human p of the task's train split) on the "
        "test items, written as an lm-eval run for `distjudge compare`. No model is loaded.",
    )
    parser.add_argument("--tasks", required=True, help="comma-separated distjudge task names")
    parser.add_argument("--out", required=True, help="folder for results_*.json and samples")
    parser.add_argument("--limit", type=int, default=None, help="first N test items, as lm-eval")
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--include_path", action="append", default=[], help="your task folder")
    args = parser.parse_args(argv)
    task_rows = {}
    for task in [t.strip() for t in args.tasks.split(",") if t.strip()]:
        find_task(task, args.include_path)  # an unknown name is one line
        items = load_task_items(task, args.data_dir, folders=args.include_path)
        train = [it for it in items if it["split"] == "train"]
        test = [it for it in items if it["split"] == "test"][: args.limit]
        q = prior_distribution(train)
        task_rows[task] = score_items(test, q)
        kl = np.mean([r["kl"] for r in task_rows[task]])
        print(f"{task}: prior q = {np.round(q, 4).tolist()}, {len(test)} test items, KL = {kl:.4f}")
    print(f"wrote {write_run(args.out, task_rows, model='prior')}")
    return 0
