"""SummEval per-annotator ratings from the ``M*_outputs_annotations.jsonl`` files."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from distjudge_eval.data.items import SkipLog, make_item
from distjudge_eval.data.jsonl import read_jsonl
from distjudge_eval.labels import LIKERT_5

DIMENSIONS = ("coherence", "consistency", "fluency", "relevance")
Raters = Literal["all", "experts", "crowd"]
RATER_FIELDS: dict[str, tuple[str, ...]] = {
    "all": ("expert_annotations", "turker_annotations"),
    "experts": ("expert_annotations",),
    "crowd": ("turker_annotations",),
}


def summeval_files(folder: Path) -> list[Path]:
    files = sorted(folder.glob("M*_outputs_annotations.jsonl"))
    if not files:
        raise FileNotFoundError(f"no M*_outputs_annotations.jsonl files in {folder}")
    return files


def load_summeval(
    folder: Path, dimension: str, skips: SkipLog, raters: Raters = "all"
) -> list[dict[str, Any]]:
    """One item per (summary, dimension); p over ratings 1..5 from the chosen raters.

    ``raters``: ``all`` (3 experts + 5 crowd workers, default), ``experts`` or ``crowd``. The
    split groups by source article, so no article is seen in both train and test.
    """
    if dimension not in DIMENSIONS:
        raise ValueError(f"unknown SummEval dimension {dimension!r}: expected one of {DIMENSIONS}")
    if raters not in RATER_FIELDS:
        raise ValueError(f"unknown raters {raters!r}: expected one of {tuple(RATER_FIELDS)}")
    items = []
    for path in summeval_files(folder):
        for where, row in read_jsonl(path, skips):
            item = _row_to_item(row, dimension, raters, where, skips)
            if item is not None:
                items.append(item)
    return items


def _row_to_item(
    row: dict[str, Any], dimension: str, raters: str, where: str, skips: SkipLog
) -> dict[str, Any] | None:
    doc_id, model_id = row.get("id"), row.get("model_id")
    article, summary = row.get("text"), row.get("decoded")
    if not doc_id or not model_id or not isinstance(article, str) or not isinstance(summary, str):
        skips.skip("missing id, model_id, text or decoded", where)
        return None
    votes = [0] * len(LIKERT_5)
    for field_name in RATER_FIELDS[raters]:
        annotations = row.get(field_name)
        if not isinstance(annotations, list):
            skips.skip(f"missing {field_name}", where)
            return None
        for ann in annotations:
            score = ann.get(dimension) if isinstance(ann, dict) else None
            if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5:
                skips.skip("unknown label", where)
                return None
            votes[int(score) - 1] += 1
    if sum(votes) == 0:
        skips.skip("no votes", where)
        return None
    return make_item(
        f"{doc_id}/{model_id}/{dimension}",
        str(doc_id),
        votes,
        doc_id=str(doc_id),
        model_id=str(model_id),
        dimension=dimension,
        article=article,
        summary=summary,
    )
