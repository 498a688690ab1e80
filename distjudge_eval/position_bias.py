"""Positional bias of pairwise judges, from one run that scored a task in both slot orders.

A task ``T`` and its ``T_swapped`` twin score the same items with answers A and B exchanged.
Per item (paired by item id) this gives:

* ``swap_consistent``: 1 if the verdict (argmax q) names the same answer in both orders;
* ``symmetry_dev``: |P(A ≻ B) + P(B ≻ A | B shown first) − 1|, a tie counting half a win
  (0 for a judge blind to order; see ``pairwise``);
* the order-averaged q, the mean of the original q and the swapped q read back in the original
  order, scored with every distjudge metric as the derived task ``T_order_avg``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from distjudge_eval.metrics import item_metrics
from distjudge_eval.pairwise import prob_first_wins, swap_distribution
from distjudge_eval.runs import read_run

SWAPPED = "_swapped"
ORDER_AVG = "_order_avg"
POSITION_METRICS = ("swap_consistent", "symmetry_dev")


def paired_tasks(tasks: list[str] | dict[str, Any]) -> list[str]:
    """Tasks that were also scored in the swapped order."""
    return sorted(t for t in tasks if not t.endswith(SWAPPED) and t + SWAPPED in tasks)


def item_key(row: dict[str, Any]) -> str:
    doc = row.get("doc") or {}
    return str(doc.get("id", row["doc_id"]))


def order_averaged_rows(
    original: dict[int, dict[str, Any]], swapped: dict[int, dict[str, Any]]
) -> dict[int, dict[str, Any]]:
    """Per-item rows of the derived ``T_order_avg`` task (items scored in both orders only)."""
    by_key = {item_key(row): row for row in swapped.values()}
    out = {}
    for doc_id, row in original.items():
        twin = by_key.get(item_key(row))
        if twin is None:
            continue
        q1 = np.asarray(row["ece"]["q"], dtype=np.float64)
        q2_raw = np.asarray(twin["ece"]["q"], dtype=np.float64)
        q2 = np.asarray(swap_distribution(q2_raw))
        q_avg = 0.5 * (q1 + q2)
        metrics = item_metrics(row["ece"]["p"], np.log(q_avg), item_key(row))
        metrics.pop("label_mass")
        metrics["swap_consistent"] = float(np.argmax(q1) == np.argmax(q2))
        metrics["symmetry_dev"] = abs(prob_first_wins(q1) + prob_first_wins(q2_raw) - 1.0)
        metrics["doc_id"] = doc_id
        metrics["doc"] = {"id": item_key(row)}
        out[doc_id] = metrics
    return out


def add_order_averaged(samples: dict[str, dict[int, dict[str, Any]]]) -> list[str]:
    """Add ``T_order_avg`` for every task scored in both orders; returns the derived names."""
    added = []
    for task in paired_tasks(samples):
        rows = order_averaged_rows(samples[task], samples[task + SWAPPED])
        if rows:
            samples[task + ORDER_AVG] = rows
            added.append(task + ORDER_AVG)
    return added


def summary_lines(results_file: Path) -> list[str]:
    """One line per task scored in both orders by the run that wrote ``results_file``."""
    stamp = results_file.stem[len("results_") :]
    try:
        run = read_run(results_file.parent, pattern=f"samples_*_{stamp}.jsonl")
    except FileNotFoundError:
        return []
    add_order_averaged(run.samples)
    lines = []
    for task in paired_tasks(run.samples):
        rows = run.samples.get(task + ORDER_AVG, {})
        if not rows:
            continue

        def mean(metric: str, rows: dict = rows) -> float:
            return float(np.mean([r[metric] for r in rows.values()]))

        kls = [float(np.mean([r["kl"] for r in run.samples[t].values()]))
               for t in (task, task + SWAPPED)]  # fmt: skip
        lines.append(
            f"{task}: {len(rows)} item{'s' * (len(rows) != 1)} in both orders, swap consistency "
            f"{mean('swap_consistent'):.3f}, symmetry deviation {mean('symmetry_dev'):.3f}, "
            f"KL original {kls[0]:.4f} / swapped {kls[1]:.4f} / order-averaged {mean('kl'):.4f}"
        )
    return lines
