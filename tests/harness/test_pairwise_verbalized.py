"""Slot swapping, position-bias metrics and the verbalized parser, against hand/scipy values."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import entropy

from distjudge_eval import compare as C
from distjudge_eval.data.catalog import find_task
from distjudge_eval.data.load import task_dataset
from distjudge_eval.errors import UserError
from distjudge_eval.labels import NLI
from distjudge_eval.metrics import item_metrics, plurality_accuracy
from distjudge_eval.pairwise import binary_target, prob_first_wins, swap_distribution, swap_item
from distjudge_eval.position_bias import order_averaged_rows
from distjudge_eval.verbalized import (
    VERBAL_FLOOR,
    parse_distribution,
    parse_probability,
    score,
    target_text,
    verbal_q,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.73</prob>", 0.73),  # the usual reply after the <prob> generation prefix
        ("0.73", 0.73),  # stop sequence removed the closing tag
        (" <prob>0.2</prob> since A is wrong", 0.2),
        ("Sure! <prob> .5", 0.5),
        ("73%", 0.73),
        ("<prob>1</prob>", 1.0),
        ("1. Read the question", None),  # a list item, not a probability
        ("<prob>1.3</prob>", None),  # out of range
        ("<prob>73</prob>", None),  # > 1 without a percent sign is ambiguous
        ("B", None),
        ("", None),
        ("0.7 and then 0.2", None),
    ],
)
def test_parse_probability(text: str, expected: float | None) -> None:
    assert parse_probability(text) == (None if expected is None else pytest.approx(expected))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("entailment: 0.7, neutral: 0.2, contradiction: 0.1", [0.7, 0.2, 0.1]),
        ("Entailment=70%, neutral=20%, contradiction=10%", [0.7, 0.2, 0.1]),
        ("yes: 0.5, maybe: 0.5", [0.5, 0.5, 0.0]),  # synonyms; a missing label is 0
        ("entailment: .6, neutral: .3, contradiction: .15", [0.6 / 1.05, 0.3 / 1.05, 0.15 / 1.05]),
        ("entailment: 0.5", None),  # sums to 0.5: not a distribution
        ("neutral: 0.5, neutral: 0.5", None),  # one label twice
        ("entailment: 2, neutral: 0", None),
        (" 0.00", None),
    ],
)
def test_parse_distribution(text: str, expected: list[float] | None) -> None:
    got = parse_distribution(text, NLI)
    assert got == (None if expected is None else pytest.approx(expected))


def test_verbal_scores_against_scipy() -> None:
    doc = {"id": "x", "p": [0.5, 0.25, 0.25]}  # A, B, tie -> P(A better) = 0.625
    out = score(doc, "0.9</prob>", None)
    p = [0.625, 0.375]
    q = [0.1, 0.9]
    assert out["kl"] == pytest.approx(entropy(p, q))
    assert out["acc"] == 0.0 and out["parse_fail"] == 0.0
    assert out["brier"] == pytest.approx((0.1 - 0.625) ** 2 + (0.9 - 0.375) ** 2)
    extreme = score(doc, "1", None)  # written 0 gets the floor, so KL stays finite
    assert extreme["ece"]["q"][0] == pytest.approx(VERBAL_FLOOR / (1 + VERBAL_FLOOR))
    assert np.isfinite(extreme["kl"])
    fail = score(doc, "no idea", None)
    assert fail["parse_fail"] == 1.0 and fail["ece"]["q"] == [0.5, 0.5]
    assert fail["acc"] == 0.5  # a tie in q splits the credit
    assert "label_mass" not in fail
    nli = score({"id": "y", "p": [0.6, 0.4, 0.0]}, "entailment: 0.5, neutral: 0.5", NLI)
    q3 = np.array([0.5, 0.5, VERBAL_FLOOR])
    assert nli["kl"] == pytest.approx(entropy([0.6, 0.4, 0.0], q3 / q3.sum()))


def test_sft_target_round_trips_through_the_parser() -> None:
    for prob in (0.0, 0.125, 0.5, 0.875, 1.0):
        assert parse_probability(target_text(prob)) == pytest.approx(round(prob, 2))
    q, ok = verbal_q(target_text(0.3), None)
    assert ok and q == pytest.approx([0.7, 0.3])


def test_tie_split_accuracy() -> None:
    assert plurality_accuracy([0.6, 0.4], [0.5, 0.5]) == 0.5
    assert plurality_accuracy([0.4, 0.4, 0.2], [0.2, 0.2, 0.6]) == 0.0
    assert plurality_accuracy([0.4, 0.4, 0.2], [0.45, 0.45, 0.1]) == 0.5  # same as a pick


def test_swap_helpers() -> None:
    assert swap_distribution([0.6, 0.1, 0.3]) == [0.1, 0.6, 0.3]
    assert swap_distribution([0.2, 0.8]) == [0.8, 0.2]
    assert prob_first_wins([0.6, 0.1, 0.3]) == pytest.approx(0.75)
    assert binary_target([0.6, 0.1, 0.3]) == pytest.approx([0.75, 0.25])
    item = {"id": "1:a|b", "answer_a": "x", "answer_b": "y", "model_a": "a", "model_b": "b",
            "votes": [3, 1, 1], "p": [0.6, 0.2, 0.2], "target": 0}  # fmt: skip
    swapped = swap_item(item)
    assert (swapped["answer_a"], swapped["model_b"]) == ("y", "a")
    assert swapped["votes"] == [1, 3, 1] and swapped["target"] == 1
    assert swap_item(swapped) | {"order": None} == item | {"order": None}
    with pytest.raises(ValueError):
        swap_distribution([0.2, 0.2, 0.2, 0.4])


def test_swapped_task_data_is_the_same_items_flipped(data_dir: Path) -> None:
    canon = task_dataset(find_task("distjudge_mtbench").spec, data_dir=str(data_dir))["test"]
    swapped = find_task("distjudge_mtbench_swapped").spec
    flipped = task_dataset(swapped, data_dir=str(data_dir))["test"]
    assert len(canon) == len(flipped) == 138
    for a, b in zip(canon, flipped, strict=True):
        assert a["id"] == b["id"] and a["answer_a"] == b["answer_b"]
        assert b["p"] == pytest.approx([a["p"][1], a["p"][0], a["p"][2]])
    snli = dataclasses.replace(find_task("distjudge_snli").spec, order="swapped")
    with pytest.raises(UserError, match="order swapped needs a pairwise task"):
        task_dataset(snli, data_dir=str(data_dir))


def _rows(qs: list[list[float]], ps: list[list[float]]) -> dict[int, dict]:
    out = {}
    for i, (q, p) in enumerate(zip(qs, ps, strict=True)):
        out[i] = {"doc_id": i, "doc": {"id": f"item{i}"}, **item_metrics(p, np.log(q), str(i))}
    return out


def test_position_bias_metrics_by_hand() -> None:
    ps = [[0.6, 0.2, 0.2], [0.2, 0.6, 0.2], [0.0, 0.0, 1.0]]
    original = [[0.7, 0.2, 0.1], [0.5, 0.3, 0.2], [0.3, 0.3, 0.4]]
    # item 0: a symmetric judge; item 1: always prefers slot A; item 2: symmetric with ties
    swapped = [[0.2, 0.7, 0.1], [0.5, 0.3, 0.2], [0.3, 0.3, 0.4]]
    ps_swapped = [swap_distribution(p) for p in ps]
    rows = order_averaged_rows(_rows(original, ps), _rows(swapped, ps_swapped))
    assert [rows[i]["swap_consistent"] for i in range(3)] == [1.0, 0.0, 1.0]
    # brute force: P(first slot wins) counts a tie half, in each order as shown
    expected_dev = [abs((0.7 + 0.05) + (0.2 + 0.05) - 1), abs((0.5 + 0.1) * 2 - 1), 0.0]
    assert [rows[i]["symmetry_dev"] for i in range(3)] == pytest.approx(expected_dev)
    avg = (np.array(original[1]) + np.array([0.3, 0.5, 0.2])) / 2
    assert rows[1]["kl"] == pytest.approx(entropy(ps[1], avg))
    assert rows[1]["ece"]["q"] == pytest.approx(avg.tolist())


def test_compare_adds_order_averaged_task_and_position_table(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    ps = rng.dirichlet(np.ones(3), size=12).tolist()
    q1 = rng.dirichlet(np.ones(3), size=12).tolist()
    q2 = rng.dirichlet(np.ones(3), size=12).tolist()
    sub = tmp_path / "run" / "model"
    sub.mkdir(parents=True)
    for task, qs, pp in (
        ("distjudge_mtbench", q1, ps),
        ("distjudge_mtbench_swapped", q2, [swap_distribution(p) for p in ps]),
    ):
        with (sub / f"samples_{task}_2026-01-01.jsonl").open("w") as fh:
            for row in _rows(qs, pp).values():
                fh.write(json.dumps(row) + "\n")
    run = C.load_run(tmp_path / "run")
    assert "distjudge_mtbench_order_avg" in run.samples
    report = C.compare([run])
    assert "Position bias" in report.markdown
    consistency = np.mean(
        [np.argmax(a) == np.argmax(swap_distribution(b)) for a, b in zip(q1, q2, strict=True)]
    )
    row = next(r for r in report.csv_rows if r["metric"] == "swap_consistent")
    assert row["mean"] == pytest.approx(consistency)
