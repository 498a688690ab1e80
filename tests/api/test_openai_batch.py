"""openai-judge's Batch API mode against a local files + batches server: success, partial
failure, refusal, expiry, bounded rounds, and a run abandoned mid-way that a rerun resumes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from api_support import KEY, RecordingCache, Req, expected_nli_logprobs, requests_for
from fake_openai_batch import FakeBatchAPI

from distjudge_eval.models.openai_judge import APIJudgeError, OpenAIJudgeLM


def judge(server: FakeBatchAPI, tmp: Path, **kwargs: Any) -> OpenAIJudgeLM:
    args: dict[str, Any] = {"batch": "true", "batch_poll_s": 0.01, "batch_dir": str(tmp)}
    return OpenAIJudgeLM(model="m", base_url=server.base_url, api_key=KEY, **(args | kwargs))


def ids(lines: list[dict[str, Any]]) -> list[str]:
    return [line["custom_id"] for line in lines]


def test_success_maps_answers_to_items_and_a_rerun_sends_nothing(tmp_path: Path) -> None:
    with FakeBatchAPI() as server:
        out = judge(server, tmp_path).loglikelihood(requests_for(3))
        again = judge(server, tmp_path).loglikelihood(requests_for(3))
    (lines,) = server.inputs  # one batch, for both runs
    assert ids(lines) == ["item-0", "item-1", "item-2"]
    body = lines[0]["body"]
    assert lines[0]["url"] == "/v1/chat/completions" and lines[0]["method"] == "POST"
    assert body["logprobs"] is True and body["temperature"] == 0.0 and body["max_tokens"] == 1
    assert body["messages"] == [{"role": "user", "content": "prompt 0\nAnswer:"}]
    assert [r[0] for r in out[:3]] == pytest.approx(expected_nli_logprobs())
    assert [r[1] for r in out[:3]] == [False, True, False]
    assert again == out
    assert all(h["Authorization"] == f"Bearer {KEY}" for h in server.headers)
    (state,) = tmp_path.glob("*.json")
    assert KEY not in state.read_text() and len(json.loads(state.read_text())["done"]) == 3


def test_partial_failure_resends_only_the_failed_lines(tmp_path: Path) -> None:
    with FakeBatchAPI(["partial"]) as server:
        out = judge(server, tmp_path).loglikelihood(requests_for(4))
    first, second = server.inputs
    assert ids(first) == [f"item-{n}" for n in range(4)]
    assert ids(second) == ["item-0", "item-1"]  # the 500 line and the error-file line
    assert [r[0] for r in out] == pytest.approx(expected_nli_logprobs() * 4)


def test_expiry_keeps_finished_lines(tmp_path: Path) -> None:
    with FakeBatchAPI(["expired"]) as server:
        out = judge(server, tmp_path).loglikelihood(requests_for(4))
    assert [ids(b) for b in server.inputs] == [
        ["item-0", "item-1", "item-2", "item-3"],
        ["item-2", "item-3"],
    ]
    assert len(out) == 12 and all(r is not None for r in out)


def test_rounds_are_bounded_and_failures_named_by_item(tmp_path: Path) -> None:
    with FakeBatchAPI(default="expired") as server:
        lm = judge(server, tmp_path, batch_max_rounds=2)
        with pytest.raises(APIJudgeError) as caught:
            lm.loglikelihood(requests_for(4))
    assert len(server.inputs) == 2
    message = str(caught.value)
    assert "1 batch requests still failing after 2 batches" in message
    assert "item 3 of distjudge_snli: batch_expired" in message
    assert "the 3 answered are kept" in message


def test_a_refused_line_is_reported_by_item_not_dropped(tmp_path: Path) -> None:
    cache = RecordingCache()
    with FakeBatchAPI(["refuse"]) as server:
        lm = judge(server, tmp_path)
        lm.set_cache_hook(cache)  # type: ignore[arg-type]
        with pytest.raises(APIJudgeError, match=r"item 0 of distjudge_snli: HTTP 400: Invalid"):
            lm.loglikelihood(requests_for(3))
    assert len(server.inputs) == 1  # a 400 is not resent
    (state,) = tmp_path.glob("*.json")
    assert sorted(json.loads(state.read_text())["done"]) == ["item-1", "item-2"]
    assert cache.items == []  # the run failed before lm-eval got results; the state has them


def test_an_abandoned_run_is_resumed_without_a_new_batch(tmp_path: Path) -> None:
    """The first run gives up while the batch is still running (as a killed run would); the
    rerun polls the saved batch: no upload, no new batch, and it gets the answers."""
    with FakeBatchAPI(["hold"]) as server:
        with pytest.raises(APIJudgeError, match="rerun the same command to resume"):
            judge(server, tmp_path, batch_max_wait_s=0.2).loglikelihood(requests_for(3))
        assert len(server.inputs) == 1 and server.batches["batch-1"]["status"] == "in_progress"
        posts = len(server.headers)
        server.release()
        out = judge(server, tmp_path).loglikelihood(requests_for(3))
        assert len(server.headers) == posts  # the rerun sent no POST at all
    assert len(server.inputs) == 1
    assert [r[0] for r in out[:3]] == pytest.approx(expected_nli_logprobs())


def test_state_lives_beside_the_lm_eval_cache(tmp_path: Path) -> None:
    class Db(dict):
        filename = str(tmp_path / "cache" / "lm_rank0.db")

    cache = RecordingCache()
    cache.dbdict = Db()
    with FakeBatchAPI() as server:
        lm = judge(server, tmp_path / "unused")
        lm.set_cache_hook(cache)  # type: ignore[arg-type]
        lm.loglikelihood(requests_for(2))
    (state,) = (tmp_path / "cache").glob("lm_rank0.db.batch-*.json")
    assert not (tmp_path / "unused").exists()
    assert len(cache.items) == 6 and json.loads(state.read_text())["batch_id"] is None


def test_generations_go_through_the_batch_too(tmp_path: Path) -> None:
    kwargs = {"until": ["\n"], "max_gen_toks": 8}
    reqs = [Req((f"prompt {d}", kwargs), d) for d in range(2)]  # type: ignore[arg-type]
    with FakeBatchAPI() as server:
        out = judge(server, tmp_path).generate_until(reqs)
    (lines,) = server.inputs
    assert lines[0]["body"]["max_tokens"] == 8 and lines[0]["body"]["stop"] == ["\n"]
    assert out == ["neutral", "neutral"]  # the fake's reply text
