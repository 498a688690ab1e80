"""SNLI / MNLI from the original ``*.jsonl`` releases, which carry the 5 annotator labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from distjudge_eval.data.items import SkipLog, make_item
from distjudge_eval.data.jsonl import read_jsonl
from distjudge_eval.labels import NLI


def load_nli(path: Path, skips: SkipLog) -> list[dict[str, Any]]:
    """One item per premise/hypothesis pair; p from ``annotator_labels``.

    Rows whose ``gold_label`` is ``-`` (no 3-vote majority) are kept: they count for KL and for
    accuracy against the plurality (with ties split). Rows with an unknown annotator label or no
    votes are skipped and counted. The split groups by premise (``captionID`` in SNLI,
    ``promptID`` in MNLI) so no premise appears in both train and test.
    """
    items = []
    for where, row in read_jsonl(path, skips):
        labels = row.get("annotator_labels")
        if not isinstance(labels, list) or not labels:
            skips.skip("no annotator votes", where)
            continue
        votes = [0] * len(NLI)
        try:
            for label in labels:
                votes[NLI.labels.index(str(label).strip().lower())] += 1
        except ValueError:
            skips.skip("unknown label", where)
            continue
        pair_id = row.get("pairID")
        premise, hypothesis = row.get("sentence1"), row.get("sentence2")
        if not pair_id or not isinstance(premise, str) or not isinstance(hypothesis, str):
            skips.skip("missing pairID or sentences", where)
            continue
        group = row.get("promptID") or row.get("captionID") or pair_id
        items.append(
            make_item(
                str(pair_id),
                str(group),
                votes,
                premise=premise,
                hypothesis=hypothesis,
                gold_label=str(row.get("gold_label", "")),
            )
        )
    return items
