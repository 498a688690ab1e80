"""Shared by the API tests: requests shaped like lm-eval's, the expected readout of the fake
server's top logprobs, a recording cache hook and the key that must never be written anywhere."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

KEY = "sk-SECRET-123"


class RecordingCache:
    """Stands in for lm-eval's CacheHook: records what the backend caches per finished item."""

    def __init__(self) -> None:
        self.dbdict: dict = {}  # not None: the backend then says finished items are cached
        self.items: list[tuple[str, Any, Any]] = []

    def add_partial(self, kind: str, args: Any, result: Any) -> None:
        self.items.append((kind, args, result))


NLI_CONTS = [" entailment", " neutral", " contradiction"]


@dataclass
class Req:
    """The parts of an lm-eval Instance the backend reads."""

    args: tuple[str, str]
    doc_id: int
    task_name: str = "distjudge_snli"


def requests_for(n_items: int) -> list[Req]:
    return [Req((f"prompt {d}\nAnswer:", c), d) for d in range(n_items) for c in NLI_CONTS]


def expected_nli_logprobs() -> list[float]:
    """By hand from TOP: " Ent" → entailment, "neutral", "contra" → contradiction; "n", "The"
    map to nothing."""
    return [math.log(0.2), math.log(0.5), math.log(0.1)]
