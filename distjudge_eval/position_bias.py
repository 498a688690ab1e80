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

from typing import Any

import numpy as np

from distjudge_eval.metrics import item_metrics
from distjudge_eval.pairwise import prob_first_wins, swap_distribution

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
