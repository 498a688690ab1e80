"""One stable hash for everything seeded by a name: splits, perturbation directions, sparse
votes, resampling in compare. Stable across runs, machines and Python's hash seed."""

from __future__ import annotations

import hashlib
from typing import Literal


def stable_hash(*parts: object, byteorder: Literal["little", "big"] = "little") -> int:
    """64 bits of sha256 over ``"part1:part2:…"``."""
    text = ":".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], byteorder)
