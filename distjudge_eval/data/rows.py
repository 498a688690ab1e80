"""Rows of a user's (or a built-in) data file -> items, as a task's :class:`DataSpec` says.

Every row that cannot become an item is counted under one reason with its first place
(``file:line``); strict mode makes the first one an error. Nothing is dropped silently.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from distjudge_eval.data.items import SkipLog, make_item
from distjudge_eval.data.spec import DataSpec, label_text

_MISSING = object()
SPLIT_NAMES = {"train": "train", "training": "train", "test": "test", "eval": "test"}


def get_path(row: Mapping[str, Any], paths: tuple[str, ...]) -> Any:
    """The first of the alternative dotted paths present in the row (or a sentinel)."""
    for path in paths:
        value: Any = row
        for part in path.split("."):
            if isinstance(value, Mapping) and part in value:
                value = value[part]
            elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            else:
                value = _MISSING
                break
        if value is not _MISSING and value is not None:
            return value
    return _MISSING


class LabelIndex:
    """Raw vote value -> label index: the label map, then the label, then a synonym."""

    def __init__(self, spec: DataSpec) -> None:
        self.index: dict[str, int] = {}
        for i, label in enumerate(spec.labels):
            for variant in (label, *spec.synonym_map.get(label, ())):
                self.index.setdefault(variant.lower(), i)
        for raw, label in spec.label_map:
            self.index[raw.lower()] = spec.labels.index(label)

    def __call__(self, raw: Any) -> int | None:
        if isinstance(raw, (dict, list)):
            return None
        return self.index.get(label_text(raw).lower())


def _count(value: Any) -> float | None:
    """A non-negative finite count, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        return None
    return float(value)


def row_votes(row: Mapping[str, Any], spec: DataSpec, labels: LabelIndex) -> list[float] | str:
    """Votes per label in label order, or the reason the row has none usable."""
    k = len(spec.labels)
    if len(spec.votes_field) > 1:  # one count column per label
        counts = [_count(get_path(row, col)) for col in spec.votes_field]
        if any(c is None for c in counts):
            return "bad count (missing, negative, NaN or not a number)"
        return counts  # type: ignore[return-value]
    raw = get_path(row, spec.votes_field[0])
    if raw is _MISSING:
        return "missing votes field"
    votes = [0.0] * k
    if spec.votes_format == "labels":
        if not isinstance(raw, list):
            return "votes are not a list of labels"
        for vote in raw:
            i = labels(vote)
            if i is None:
                return "label outside the label set"
            votes[i] += 1
        return votes
    if isinstance(raw, Mapping):
        for key, value in raw.items():
            i, c = labels(key), _count(value)
            if i is None:
                return "label outside the label set"
            if c is None:
                return "bad count (missing, negative, NaN or not a number)"
            votes[i] += c
        return votes
    if isinstance(raw, list):
        if len(raw) != k:
            return f"wrong number of counts (need {k}, one per label)"
        counts = [_count(v) for v in raw]
        if any(c is None for c in counts):
            return "bad count (missing, negative, NaN or not a number)"
        return counts  # type: ignore[return-value]
    return "counts are not a list or a {label: count} object"


def build_items(
    rows: Iterable[tuple[str, Mapping[str, Any]]], spec: DataSpec, skips: SkipLog
) -> list[dict[str, Any]]:
    """Items from (where, row) pairs; malformed rows and repeated ids are counted skips."""
    labels = LabelIndex(spec)
    pattern = re.compile(spec.split_pattern) if spec.split_pattern else None
    seen: set[str] = set()
    items = []
    for where, row in rows:
        item_id = get_path(row, spec.id_field)
        if item_id is _MISSING or label_text(item_id) == "":
            skips.skip(f"missing id ({'|'.join(spec.id_field)})", where)
            continue
        item_id = label_text(item_id)
        fields: dict[str, Any] = {}
        for name, paths in spec.fields:
            value = get_path(row, paths)
            if value is _MISSING:
                skips.skip(f"missing field {name}", where)
                break
            fields[name] = value
        else:
            votes = row_votes(row, spec, labels)
            if isinstance(votes, str):
                skips.skip(votes, where)
                continue
            if sum(votes) <= 0:
                skips.skip("no votes", where)
                continue
            split_key = _split_key(row, spec, item_id, pattern)
            split = None
            if spec.split_field:
                split = SPLIT_NAMES.get(label_text(get_path(row, spec.split_field)).lower())
                if split is None:
                    skips.skip("split field is not train or test", where)
                    continue
            if item_id in seen:
                skips.skip("duplicate id", where)
                continue
            seen.add(item_id)
            items.append(
                make_item(
                    item_id,
                    split_key,
                    votes,
                    split=split,
                    split_seed=spec.split_seed,
                    train_fraction=spec.train_fraction,
                    **fields,
                )
            )
    return items


def _split_key(
    row: Mapping[str, Any], spec: DataSpec, item_id: str, pattern: re.Pattern | None
) -> str:
    key = get_path(row, spec.split_by) if spec.split_by else item_id
    key = item_id if key is _MISSING else label_text(key)
    if pattern is not None:
        match = pattern.search(key)
        if match and match.group(1):
            key = match.group(1)
    return key
