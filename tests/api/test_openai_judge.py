"""openai-judge against a local fault-injecting OpenAI-compatible server."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from api_support import NLI_CONTS, expected_nli_logprobs, requests_for
from fake_openai import FakeOpenAI

from distjudge_eval.models.openai_judge import (
    APIJudgeError,
    LabelMatcher,
    OpenAIJudgeLM,
    label_logprobs,
)


def test_token_matching_rules() -> None:
    m = LabelMatcher.for_labels(NLI_CONTS)
    assert [m.match(t) for t in (" Ent", "ENTAILMENT", "contra", "Neutral", "[[neutral]]")] == [
        0,
        0,
        2,
        1,
        1,
    ]
    assert m.match("n") is None  # neutral / no (a contradiction synonym): ambiguous
    assert m.match("The") is None and m.match("  ") is None
    pair = LabelMatcher.for_labels([" A", " B", " tie"])
    assert [pair.match(t) for t in ("A", " b", "Tie", "[[C]]", "t")] == [0, 1, 2, 2, 2]


def test_missing_labels_get_the_documented_floor() -> None:
    top = [
        {"token": "neutral", "logprob": math.log(0.9)},
        {"token": "x", "logprob": math.log(0.02)},
    ]
    lps, covered = label_logprobs(top, LabelMatcher.for_labels(NLI_CONTS))
    # unreturned mass 0.08 over 2 missing labels = 0.04; smallest returned 0.02 -> floor 0.02
    assert lps == pytest.approx([math.log(0.02), math.log(0.9), math.log(0.02)])
    assert covered == pytest.approx(0.9)


def test_one_request_per_item_with_logprobs_and_temperature_zero() -> None:
    with FakeOpenAI() as server:
        lm = OpenAIJudgeLM(model="gpt-o1-5-mini", base_url=server.base_url, api_key="k")
        out = lm.loglikelihood(requests_for(2), disable_tqdm=True)
    assert len(server.bodies) == 2
    body = server.bodies[0]
    assert body["temperature"] == 0.0 and body["max_tokens"] == 1
    assert body["logprobs"] is True and body["top_logprobs"] == 20
    assert body["messages"] == [{"role": "user", "content": "prompt 0\nAnswer:"}]
    assert [r[0] for r in out[:3]] == pytest.approx(expected_nli_logprobs())
    assert [r[1] for r in out[:3]] == [False, True, False]
    assert lm.usage == {"prompt_tokens": 200, "completion_tokens": 2}


@pytest.mark.parametrize("fault", ["429", "500", "slow", "truncated"])
def test_transient_faults_are_retried_and_counted(fault: str) -> None:
    with FakeOpenAI([fault]) as server:
        lm = OpenAIJudgeLM(model="m", base_url=server.base_url, timeout=0.5, max_backoff=2)
        start = time.perf_counter()
        out = lm.loglikelihood(requests_for(1), disable_tqdm=True)
        elapsed = time.perf_counter() - start
    assert [r[0] for r in out] == pytest.approx(expected_nli_logprobs())
    assert lm.retries == 1 and lm.requests_sent == 2
    if fault == "429":
        assert elapsed >= 1.0  # honoured Retry-After: 1


def test_retries_are_bounded_and_the_error_names_the_item() -> None:
    with FakeOpenAI(["500"] * 10) as server:
        lm = OpenAIJudgeLM(model="m", base_url=server.base_url, max_retries=3, max_backoff=0.01)
        with pytest.raises(APIJudgeError, match=r"item 0 of distjudge_snli.*3 attempts.*HTTP 500"):
            lm.loglikelihood(requests_for(1), disable_tqdm=True)
    assert lm.requests_sent == 3


def test_missing_logprobs_is_an_error_not_a_fallback() -> None:
    with FakeOpenAI(["nologprobs"]) as server:
        lm = OpenAIJudgeLM(model="m", base_url=server.base_url)
        with pytest.raises(APIJudgeError, match="no logprobs"):
            lm.loglikelihood(requests_for(1), disable_tqdm=True)
    assert lm.requests_sent == 1


def test_requests_run_concurrently() -> None:
    with FakeOpenAI(delay=0.2) as server:
        lm = OpenAIJudgeLM(model="m", base_url=server.base_url, num_concurrent=4)
        lm.loglikelihood(requests_for(8), disable_tqdm=True)
    assert server.max_in_flight >= 2 and len(server.bodies) == 8


def run_cli(
    server: FakeOpenAI, out: Path, data_dir: Path, *extra: str, tasks: str = "distjudge_snli"
) -> str:
    args = f"model=fake-judge,base_url={server.base_url},api_key=sk-SECRET-123"
    cmd = [sys.executable, "-m", "distjudge_eval.cli", "eval", "--model", "openai-judge"]
    cmd += ["--model_args", args, "--tasks", tasks, "--limit", "3"]
    cmd += ["--output_path", str(out), "--data_dir", str(data_dir), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_cli_end_to_end_key_never_written_and_cache_resumes(tmp_path: Path, data_dir: Path) -> None:
    cache = tmp_path / "cache" / "lm"
    with FakeOpenAI() as server:
        first = run_cli(server, tmp_path / "run1", data_dir, "--use_cache", str(cache))
        assert len(server.bodies) == 3
        second = run_cli(server, tmp_path / "run2", data_dir, "--use_cache", str(cache))
        assert len(server.bodies) == 3  # the rerun made zero requests
    assert server.headers[0]["Authorization"] == "Bearer sk-SECRET-123"
    assert "openai-judge: 3 HTTP requests (0 retries), 300 prompt + 3 completion tokens" in first
    assert "sk-SECRET-123" not in first + second
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.suffix in {".json", ".jsonl"}:
            assert "sk-SECRET-123" not in path.read_text(errors="ignore"), path
    (samples,) = (tmp_path / "run1").glob("**/samples_distjudge_snli_*.jsonl")
    row = json.loads(samples.open().readline())
    q = [0.2 / 0.8, 0.5 / 0.8, 0.1 / 0.8]
    assert row["ece"]["q"] == pytest.approx(q)
    assert row["label_mass"] == pytest.approx(0.8)


def test_verbalized_generation_cuts_at_stop_and_retries(tmp_path: Path, data_dir: Path) -> None:
    """generate_until through the real lm-eval CLI: the task's stop sequences and length reach
    the server, a 500 is retried, and the reply is cut at the stop sequence before parsing."""
    tasks = "distjudge_mtbench_verbalized,distjudge_mtbench_verbalized_swapped"
    with FakeOpenAI(script=["500"], reply="0.73</prob> because A rambles") as server:
        out = run_cli(server, tmp_path / "run", data_dir, tasks=tasks)
    assert "openai-judge: 7 HTTP requests (1 retries)" in out  # 2 tasks x 3 items + 1 retry
    body = server.bodies[-1]
    assert body["stop"] == ["</prob>", "\n"] and body["max_tokens"] == 8
    assert body["temperature"] == 0.0 and "logprobs" not in body
    assert body["messages"][0]["content"].endswith("Answer: <prob>")
    # by hand: B = 0.73 in both orders, so the verdict flips with the slots and
    # P(first slot wins) = 0.27 twice: |0.27 + 0.27 - 1| = 0.46
    assert "swap consistency 0.000, symmetry deviation 0.460" in out
    for task in tasks.split(","):
        (samples,) = (tmp_path / "run").glob(f"**/samples_{task}_2*.jsonl")
        for row in map(json.loads, samples.open()):
            assert row["filtered_resps"] == ["0.73"]
            assert row["ece"]["q"] == pytest.approx([0.27, 0.73])
            assert row["parse_fail"] == 0.0


def test_unparsable_replies_are_counted_and_scored_uniform(tmp_path: Path, data_dir: Path) -> None:
    with FakeOpenAI(reply="I think B.") as server:
        run_cli(server, tmp_path / "run", data_dir, tasks="distjudge_mtbench_verbalized")
    (samples,) = (tmp_path / "run").glob("**/samples_distjudge_mtbench_verbalized_2*.jsonl")
    rows = [json.loads(line) for line in samples.open()]
    assert [r["parse_fail"] for r in rows] == [1.0, 1.0, 1.0]
    assert all(r["ece"]["q"] == [0.5, 0.5] for r in rows)
    (results,) = (tmp_path / "run").glob("**/results_*.json")
    agg = json.loads(results.read_text())["results"]["distjudge_mtbench_verbalized"]
    assert agg["parse_fail,none"] == 1.0


def test_the_key_set_in_process_is_used_and_the_environment_left_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``distjudge eval`` hands ``api_key=`` over with set_api_key: neither model_args (lm-eval
    writes them) nor os.environ carry it; an explicit api_key= still wins, the env var is the
    default."""
    from distjudge_eval.models import openai_judge

    monkeypatch.setenv("OPENAI_API_KEY", "from-env")
    monkeypatch.setattr(openai_judge, "_PROCESS_API_KEY", None)
    assert openai_judge.resolve_api_key(None) == "from-env"
    openai_judge.set_api_key("in-process")
    with FakeOpenAI() as server:
        lm = OpenAIJudgeLM(model="m", base_url=server.base_url)
        lm.loglikelihood(requests_for(1), disable_tqdm=True)
    assert server.headers[0]["Authorization"] == "Bearer in-process"
    assert "in-process" not in repr(lm)
    assert openai_judge.resolve_api_key("explicit") == "explicit"
    assert os.environ["OPENAI_API_KEY"] == "from-env"
