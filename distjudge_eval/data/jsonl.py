"""Reading JSON-lines files (plain or gzip) with malformed lines counted, not fatal."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from distjudge_eval.data.items import SkipLog


def read_jsonl(path: Path, skips: SkipLog) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (``file:line``, object) for every line that parses to a JSON object."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            where = f"{path.name}:{line_no}"
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                skips.skip("bad JSON", where)
                continue
            if not isinstance(obj, dict):
                skips.skip("not a JSON object", where)
                continue
            yield where, obj
