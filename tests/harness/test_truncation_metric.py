"""Issue #14: a prompt that does not fit the judge's context is counted in lm-eval's results.

hf-judge with a tiny random Llama and a byte tokenizer (one token per byte, so which SNLI prompts
fit is known from their byte counts) runs through ``lm_eval.simple_evaluate`` on distjudge_snli.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lm_eval
import pytest
from lm_eval.tasks import TaskManager
from tiny_models import byte_tokenizer, n_tokens, one_thread, tiny_llama

from distjudge_eval import truncation
from distjudge_eval.errors import UserError
from distjudge_eval.metrics import METRIC_BY_NAME, metric_list
from distjudge_eval.models.hf_judge import HFJudgeLM
from distjudge_eval.paths import tasks_dir

TASK = "distjudge_snli"
LIMIT = 3
LONGEST_LABEL = n_tokens(" contradiction")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def manager(data_dir: Path) -> TaskManager:
    meta = {"data_dir": str(data_dir)}
    return TaskManager(include_path=str(tasks_dir()), include_defaults=False, metadata=meta)


@pytest.fixture(scope="module")
def prompt_lengths(manager: TaskManager) -> list[int]:
    """Token counts of the first LIMIT test prompts (as lm-eval strips them before encoding)."""
    task = dict(manager.load([TASK])["tasks"])[TASK]
    docs = list(task.test_docs())[:LIMIT]
    return [n_tokens(task.doc_to_text(d).rstrip()) for d in docs]


@pytest.fixture(scope="module")
def model_and_tokenizer():
    return tiny_llama(), byte_tokenizer()


def max_length_cutting_some(lengths: list[int]) -> tuple[int, int]:
    """A max_length that fits the shortest prompt exactly and cuts the longer ones, and the
    number of items it cuts (prompt + longest label must fit in max_length + 1 tokens)."""
    max_length = min(lengths) + LONGEST_LABEL - 1
    cut = sum(n > max_length + 1 - LONGEST_LABEL for n in lengths)
    assert 0 < cut < len(lengths), f"need prompts of different lengths, got {lengths}"
    return max_length, cut


def evaluate(model_and_tokenizer, manager: TaskManager, max_length: int, mode: str) -> dict:
    model, tokenizer = model_and_tokenizer
    lm = HFJudgeLM(
        pretrained=model, tokenizer=tokenizer, max_length=max_length, truncation=mode, batch_size=1
    )
    return lm_eval.simple_evaluate(
        model=lm, tasks=[TASK], task_manager=manager, limit=LIMIT, log_samples=True
    )


def test_truncated_items_are_counted_in_the_results(
    model_and_tokenizer, manager: TaskManager, prompt_lengths: list[int], caplog
) -> None:
    max_length, cut = max_length_cutting_some(prompt_lengths)
    with caplog.at_level(logging.WARNING, logger="distjudge"):
        out = evaluate(model_and_tokenizer, manager, max_length, "left")
    res = out["results"][TASK]
    assert res["truncated,none"] == cut
    assert res["truncated_stderr,none"] == "N/A"  # a count, not a mean
    assert out["higher_is_better"][TASK]["truncated"] is False
    rows = sorted(out["samples"][TASK], key=lambda r: r["doc_id"])
    flags = [n > max_length + 1 - LONGEST_LABEL for n in prompt_lengths]
    assert [r["truncated"] for r in rows] == [float(f) for f in flags]
    assert all("kl" in r for r in rows)  # cut items are still scored
    warnings = [r.getMessage() for r in caplog.records if "max_length" in r.getMessage()]
    assert warnings == [
        f"hf-judge: {cut} of {LIMIT} items of {TASK} are longer than max_length={max_length} "
        "tokens; their prompts were cut from the left (truncation=fail makes this an error)"
    ]

    # A second run in the same process, where everything fits, reports no stale count.
    again = evaluate(model_and_tokenizer, manager, 4096 - 1, "left")
    assert again["results"][TASK]["truncated,none"] == 0


def test_skip_counts_the_item_and_leaves_it_out_of_every_other_metric(
    model_and_tokenizer, manager: TaskManager, prompt_lengths: list[int]
) -> None:
    max_length, cut = max_length_cutting_some(prompt_lengths)
    skipped = evaluate(model_and_tokenizer, manager, max_length, "skip")
    full = evaluate(model_and_tokenizer, manager, 4096 - 1, "left")
    res = skipped["results"][TASK]
    assert res["truncated,none"] == cut
    rows = {r["doc_id"]: r for r in skipped["samples"][TASK]}
    full_rows = {r["doc_id"]: r for r in full["samples"][TASK]}
    kept = [i for i, n in enumerate(prompt_lengths) if n <= max_length + 1 - LONGEST_LABEL]
    for i, row in rows.items():
        if i in kept:  # scored exactly as without truncation
            assert row["truncated"] == 0.0
            assert row["kl"] == pytest.approx(full_rows[i]["kl"], abs=1e-6)
        else:
            assert row["truncated"] == 1.0 and "kl" not in row and "acc" not in row
    assert res["kl,none"] == pytest.approx(sum(rows[i]["kl"] for i in kept) / len(kept))
    assert skipped["n-samples"][TASK]["effective"] == LIMIT


def test_fail_stops_before_scoring(model_and_tokenizer, manager, prompt_lengths) -> None:
    max_length, _ = max_length_cutting_some(prompt_lengths)
    with pytest.raises(UserError, match=rf"hf-judge: item \d+ of {TASK}: prompt \d+ tokens"):
        evaluate(model_and_tokenizer, manager, max_length, "fail")


def test_truncated_is_a_registry_metric_counted_in_every_task_kind() -> None:
    metric = METRIC_BY_NAME["truncated"]
    assert metric.higher_is_better is False and metric.aggregation == "count"
    for readout in ("logprob", "verbalized"):
        entry = next(e for e in metric_list(readout) if e["metric"] == "truncated")
        assert entry["aggregation"]([1.0, 0.0, 1.0]) == 2.0


def test_records_are_per_task_and_item_and_cleared_per_task() -> None:
    truncation.clear()
    truncation.record("a", {"id": 7})
    truncation.record("a", None, doc_id=3, kind=truncation.SKIPPED)
    truncation.record("b", {"id": "7"}, kind=truncation.SKIPPED)
    assert truncation.status("a", {"id": "7"}) == "cut"  # ids compare as text
    assert truncation.status("a", {"x": 1}, doc_id=3) == "skipped"
    assert truncation.status("b", {"id": 7}) == "skipped"
    assert truncation.status("a", {"id": 8}) is None
    assert (truncation.count("a"), truncation.count("b")) == (2, 1)
    truncation.clear("a")
    assert (truncation.count("a"), truncation.count("b")) == (0, 1)
    with pytest.raises(ValueError, match="truncation kind"):
        truncation.record("a", {"id": 1}, kind="dropped")  # type: ignore[arg-type]
    truncation.clear()


def test_a_yaml_process_results_is_wrapped_so_its_items_are_counted(manager) -> None:
    """MT-Bench's verbalized tasks read replies with their own process_results: truncation is
    counted and skipping honoured there too."""
    from distjudge_eval.verbalized import process_results_binary

    name = "distjudge_mtbench_verbalized"
    task = dict(manager.load([name])["tasks"])[name]
    task.build_all_requests(limit=1)  # a fresh evaluation forgets older records
    fit, cut, skipped = list(task.test_docs())[:3]
    truncation.record(name, cut)
    truncation.record(name, skipped, kind=truncation.SKIPPED)
    reply = ["0.70"]
    for doc, flag in ((fit, 0.0), (cut, 1.0)):
        want = {**process_results_binary(doc, reply), "truncated": flag}
        assert task.process_results(doc, reply) == want
    assert task.process_results(skipped, [""]) == {"truncated": 1.0}
    truncation.clear(name)
