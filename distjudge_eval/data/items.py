"""The item record every loader produces, the train/test split, and counted skips.

An item is a plain dict (so it drops straight into a ``datasets.Dataset``) with at least:
``id``, ``split_key`` (the group that must not straddle splits), ``split``, ``votes`` (counts per
label, in the label set's order), ``p`` (votes normalised), ``target`` (first plurality label).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from distjudge_eval.distributions import votes_to_p
from distjudge_eval.errors import UserError
from distjudge_eval.seeding import stable_hash

logger = logging.getLogger("distjudge")

SPLIT_SEED = 20240521
TRAIN_FRACTION = 0.8


def split_of(split_key: str, seed: int = SPLIT_SEED, train_fraction: float = TRAIN_FRACTION) -> str:
    """Deterministic train/test assignment from a hash of (seed, key): stable across machines."""
    u = stable_hash(seed, split_key, byteorder="big") / 2**64
    return "train" if u < train_fraction else "test"


def make_item(
    item_id: str,
    split_key: str,
    votes: Sequence[int | float],
    *,
    split: str | None = None,
    split_seed: int = SPLIT_SEED,
    train_fraction: float = TRAIN_FRACTION,
    **fields: Any,
) -> dict[str, Any]:
    """An item; ``split`` is hashed from ``split_key`` unless the data already names it."""
    p = votes_to_p(votes)
    whole = all(float(v).is_integer() for v in votes)
    counts = [int(v) if whole else float(v) for v in votes]
    return {
        "id": item_id,
        "split_key": split_key,
        "split": split or split_of(split_key, split_seed, train_fraction),
        "votes": counts,
        "n_votes": sum(counts),
        "p": p.tolist(),
        "target": int(np.argmax(p)),
        **fields,
    }


class MalformedDataError(UserError, ValueError):
    """Raised in strict mode at the first malformed row."""


@dataclass
class SkipLog:
    """Counts malformed rows by reason; strict mode turns the first one into an error."""

    source: str
    strict: bool = False
    counts: Counter = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    def skip(self, reason: str, where: str) -> None:
        if self.strict:
            raise MalformedDataError(f"{self.source}: {where}: {reason} (strict mode)")
        self.counts[reason] += 1
        self.examples.setdefault(reason, where)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        if not self.counts:
            return f"{self.source}: no rows skipped"
        parts = [f"{n} {why} (first at {self.examples[why]})" for why, n in self.counts.items()]
        return f"{self.source}: skipped {self.total} rows: " + "; ".join(parts)
