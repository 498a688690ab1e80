"""Proper-scoring-rule rewards for a verbalized probability, for GRPO on sparse binary labels.

The completion is cut at the task's stop sequences (as the harness does) and parsed by the
harness's own parser. Both rules are proper: for a label y ~ Bernoulli(π) the expected reward is
maximised by writing x = π, so the judge learns calibrated probabilities from single votes.

* Brier: 1 − (x − y)², in [0, 1]; an unparsable reply gets 0, the worst possible.
* Log: y·log x + (1 − y)·log(1 − x) with x clipped to [c, 1 − c]; an unparsable reply gets
  log c, the worst possible after clipping.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from distjudge_eval.verbalized import cut_at_stops, parse_probability


def brier_reward(x: float | None, y: float) -> float:
    return 0.0 if x is None else 1.0 - (x - y) ** 2


def log_reward(x: float | None, y: float, clip: float = 0.01) -> float:
    if not 0.0 < clip < 0.5:
        raise ValueError(f"log_clip must be in (0, 0.5), got {clip}")
    if x is None:
        return math.log(clip)
    x = min(max(x, clip), 1.0 - clip)
    return y * math.log(x) + (1.0 - y) * math.log(1.0 - x)


def make_reward_fn(kind: str, until: Sequence[str], clip: float = 0.01) -> Callable[..., list]:
    """A TRL reward function: (completions, y, ...) -> rewards."""
    if kind not in ("brier", "log"):
        raise ValueError(f"reward must be brier or log, got {kind!r}")

    def reward(completions: list[Any], y: list[float], **_: Any) -> list[float]:
        out = []
        for completion, label in zip(completions, y, strict=True):
            text = completion if isinstance(completion, str) else completion[-1]["content"]
            x = parse_probability(cut_at_stops(text, until))
            out.append(brier_reward(x, label) if kind == "brier" else log_reward(x, label, clip))
        return out

    reward.__name__ = f"{kind}_score"
    return reward
