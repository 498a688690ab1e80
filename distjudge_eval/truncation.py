"""Which items had a prompt too long for the judge: backends record them, tasks count them.

lm-eval hands a backend every request of a run first and the task each doc's results only
afterwards, in the same process (with data parallelism, each rank scores and processes its own
docs). A backend that cuts or skips an over-long prompt calls :func:`record_request`; the
task's ``process_results`` asks :func:`status` and reports the ``truncated`` metric, so the
count reaches lm-eval's results whatever the backend. ``DistributionTask`` clears its task's
records when it builds its requests, so a second run in the same process starts clean.

Items are keyed by (task name, the doc's ``id`` field), falling back to lm-eval's ``doc_id``
for docs without one; a task's ``process_results`` sees the doc, not its ``doc_id``.

A backend that does not score an item records it ``SKIPPED`` and still answers each of its
requests (hf-judge returns ``(nan, False)`` or an empty reply): the task reads no score of a
skipped item. It should not put those answers in lm-eval's request cache.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Literal

Kind = Literal["cut", "skipped"]
CUT: Kind = "cut"  # scored on the prompt's last tokens
SKIPPED: Kind = "skipped"  # not scored: counted, left out of every other metric

_lock = threading.Lock()  # API backends score from worker threads
_records: dict[str, dict[str, Kind]] = {}


def item_key(doc: Any, doc_id: Any = None) -> str:
    """The doc's ``id`` field as text, else lm-eval's ``doc_id``."""
    if isinstance(doc, Mapping) and doc.get("id") is not None:
        return str(doc["id"])
    return f"doc_id:{doc_id}"


def record(task: str | None, doc: Any, doc_id: Any = None, kind: Kind = CUT) -> None:
    """Note that this item's prompt did not fit (``cut``: scored shortened; ``skipped``)."""
    if kind not in (CUT, SKIPPED):
        raise ValueError(f"truncation kind must be {CUT!r} or {SKIPPED!r}, got {kind!r}")
    with _lock:
        _records.setdefault(task or "", {})[item_key(doc, doc_id)] = kind


def record_request(request: Any, kind: Kind = CUT) -> None:
    """:func:`record` for an lm-eval ``Instance`` (it carries task_name, doc and doc_id)."""
    record(
        getattr(request, "task_name", None),
        getattr(request, "doc", None),
        getattr(request, "doc_id", None),
        kind,
    )


def status(task: str | None, doc: Any, doc_id: Any = None) -> Kind | None:
    """``cut``, ``skipped`` or None (the prompt fit, or no backend said otherwise)."""
    with _lock:
        return _records.get(task or "", {}).get(item_key(doc, doc_id))


def count(task: str | None) -> int:
    """Items of ``task`` recorded in this process since its last :func:`clear`."""
    with _lock:
        return len(_records.get(task or "", {}))


def clear(task: str | None = None) -> None:
    """Forget one task's records (all tasks' when ``task`` is None)."""
    with _lock:
        if task is None:
            _records.clear()
        else:
            _records.pop(task or "", None)
