"""Proper-scoring-rule rewards for a verbalized probability, for GRPO on sparse labels.

The completion is cut at the task's stop sequences (as the harness does) and parsed by the
harness's own parser. Every rule is proper: for a label y ~ π the expected reward is maximised by
writing π, so the judge learns calibrated probabilities from single votes.

Pairwise tasks (the judge writes x = P(B better), y ∈ {0, ½, 1}):

* Brier: 1 − (x − y)², in [0, 1]; an unparsable reply gets 0, the worst possible.
* Log: y·log x + (1 − y)·log(1 − x) with x clipped to [c, 1 − c]; an unparsable reply gets
  log c, the worst possible after clipping.

Label tasks (the judge writes a distribution q over k labels, y = the index of the drawn vote):

* Brier: 1 − ½·Σᵢ (qᵢ − [i = y])², in [0, 1] (the squared distance of two distributions is at
  most 2); an unparsable reply gets 0, the worst possible.
* Log: log max(q_y, c); an unparsable reply gets log c, the worst possible after clipping.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from distjudge_eval.labels import LabelSet
from distjudge_eval.verbalized import cut_at_stops, parse_distribution, parse_probability


def brier_reward(x: float | None, y: float) -> float:
    return 0.0 if x is None else 1.0 - (x - y) ** 2


def log_reward(x: float | None, y: float, clip: float = 0.01) -> float:
    _check_clip(clip)
    if x is None:
        return math.log(clip)
    x = min(max(x, clip), 1.0 - clip)
    return y * math.log(x) + (1.0 - y) * math.log(1.0 - x)


def multiclass_brier_reward(q: Sequence[float] | None, y: int) -> float:
    if q is None:
        return 0.0
    onehot = np.zeros(len(q))
    onehot[y] = 1.0
    return float(1.0 - 0.5 * np.sum((np.asarray(q, dtype=np.float64) - onehot) ** 2))


def multiclass_log_reward(q: Sequence[float] | None, y: int, clip: float = 0.01) -> float:
    _check_clip(clip)
    return math.log(clip) if q is None else math.log(max(float(q[y]), clip))


def _check_clip(clip: float) -> None:
    if not 0.0 < clip < 0.5:
        raise ValueError(f"log_clip must be in (0, 0.5), got {clip}")


def make_reward_fn(
    kind: str, until: Sequence[str], clip: float = 0.01, label_set: LabelSet | None = None
) -> Callable[..., list]:
    """A TRL reward function: (completions, y, ...) -> rewards. Without ``label_set`` the reply
    is a pairwise ``<prob>`` and y a binary label; with it, a distribution over its labels and y
    a label index."""
    if kind not in ("brier", "log"):
        raise ValueError(f"reward must be brier or log, got {kind!r}")
    _check_clip(clip)

    def one(text: str, label: Any) -> float:
        if label_set is None:
            x = parse_probability(text)
            return brier_reward(x, label) if kind == "brier" else log_reward(x, label, clip)
        q = parse_distribution(text, label_set)
        if kind == "brier":
            return multiclass_brier_reward(q, int(label))
        return multiclass_log_reward(q, int(label), clip)

    def reward(completions: list[Any], y: list[Any], **_: Any) -> list[float]:
        out = []
        for completion, label in zip(completions, y, strict=True):
            text = completion if isinstance(completion, str) else completion[-1]["content"]
            out.append(one(cut_at_stops(text, until), label))
        return out

    reward.__name__ = f"{kind}_score"
    return reward
