"""MT-Bench turn-1 human pairwise votes joined with the questions and the models' answers."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from distjudge_eval.data.items import SkipLog, make_item
from distjudge_eval.data.jsonl import read_jsonl

# Vote winners in the HF release; "tie (bothbad)" is a tie for our three-way p.
WINNER_SLOT = {"model_a": 0, "model_b": 1, "tie": 2, "tie (bothbad)": 2}
VOTES_FILE = "human_judgments_turn1.jsonl"


def load_mtbench(folder: Path, skips: SkipLog) -> list[dict[str, Any]]:
    """One item per (question, unordered model pair); p over (A better, B better, tie).

    Votes come in either slot order; each is flipped into one canonical order (model A is the
    alphabetically first model name) before counting. The split groups by question, so the
    trainer never sees a test question's answers.
    """
    questions = _turn1_by_question(folder / "question.jsonl", "turns", skips)
    answers: dict[str, dict[int, str]] = {}
    for path in sorted((folder / "model_answer").glob("*.jsonl")):
        answers[path.stem] = _turn1_answers(path, skips)

    votes: dict[tuple[int, str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    first_seen: dict[tuple[int, str, str], str] = {}
    for where, row in read_jsonl(folder / VOTES_FILE, skips):
        qid, ma, mb, winner = (row.get(k) for k in ("question_id", "model_a", "model_b", "winner"))
        names_ok = isinstance(ma, str) and isinstance(mb, str) and ma != mb
        if not isinstance(qid, int) or not names_ok:
            skips.skip("missing question_id or model names", where)
            continue
        if winner not in WINNER_SLOT:
            skips.skip("unknown label", where)
            continue
        slot = WINNER_SLOT[winner]
        a, b = sorted((ma, mb))
        if ma != a and slot < 2:
            slot = 1 - slot
        key = (qid, a, b)
        votes[key][slot] += 1
        first_seen.setdefault(key, where)

    items = []
    for (qid, a, b), counts in sorted(votes.items()):
        where = first_seen[(qid, a, b)]
        if qid not in questions:
            skips.skip("vote for an unknown question", where)
            continue
        missing = [m for m in (a, b) if qid not in answers.get(m, {})]
        if missing:
            skips.skip("no answer file or row for a model", f"{where} ({', '.join(missing)})")
            continue
        items.append(
            make_item(
                f"{qid}:{a}|{b}",
                str(qid),
                counts,
                question_id=qid,
                question=questions[qid],
                model_a=a,
                model_b=b,
                answer_a=answers[a][qid],
                answer_b=answers[b][qid],
            )
        )
    return items


def _turn1_by_question(path: Path, key: str, skips: SkipLog) -> dict[int, str]:
    out = {}
    for where, row in read_jsonl(path, skips):
        turns = row.get(key)
        if not isinstance(row.get("question_id"), int) or not isinstance(turns, list) or not turns:
            skips.skip(f"missing question_id or {key}", where)
            continue
        out[row["question_id"]] = str(turns[0])
    return out


def _turn1_answers(path: Path, skips: SkipLog) -> dict[int, str]:
    out = {}
    for where, row in read_jsonl(path, skips):
        choices = row.get("choices")
        qid = row.get("question_id")
        try:
            out[qid] = str(choices[0]["turns"][0])
        except (TypeError, KeyError, IndexError):
            skips.skip("answer row without choices[0].turns[0]", where)
    return out
