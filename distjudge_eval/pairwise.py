"""Slot order of pairwise items: swapping A and B, and reading a judge's q in either order.

A pairwise label set is (A, B) or (A, B, tie). Swapping the slots permutes A and B and keeps
tie. "P(A ≻ B)" counts a tie as half a win for each side, so a judge that is blind to slot order
has P(first ≻ second | original) + P(first ≻ second | swapped) = 1 exactly, ties or not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def swap_permutation(n_labels: int) -> list[int]:
    """Index map that re-reads a swapped-order distribution in the original order."""
    if n_labels not in (2, 3):
        raise ValueError(f"pairwise label sets have 2 or 3 labels (A, B[, tie]), got {n_labels}")
    return [1, 0] if n_labels == 2 else [1, 0, 2]


def swap_distribution(q: Sequence[float]) -> list[float]:
    """q over (A, B[, tie]) with the slots exchanged (an involution)."""
    return [float(q[i]) for i in swap_permutation(len(q))]


def prob_first_wins(q: Sequence[float]) -> float:
    """P(the answer in slot A is better), a tie counting half."""
    q = np.asarray(q, dtype=np.float64)
    return float(q[0] + (0.5 * q[2] if q.size == 3 else 0.0))


def binary_target(p: Sequence[float]) -> list[float]:
    """(P(A ≻ B), P(B ≻ A)) from a 3-way (A, B, tie) human distribution, a tie counting half."""
    a = prob_first_wins(p)
    return [a, 1.0 - a]


def swap_item(item: dict[str, Any]) -> dict[str, Any]:
    """The same pairwise item shown in the other slot order (same id, so orders pair up)."""
    out = dict(item)
    for left, right in (("answer_a", "answer_b"), ("model_a", "model_b")):
        if left in item:
            out[left], out[right] = item[right], item[left]
    out["votes"] = [int(v) for v in swap_distribution(item["votes"])]
    out["p"] = swap_distribution(item["p"])
    out["target"] = int(np.argmax(out["p"]))
    out["order"] = "swapped"
    return out
