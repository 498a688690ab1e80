"""openai-judge stops when it should: at a fatal error, when the server is down, on one Ctrl-C;
and its error messages say what to do without printing the API key. Only 127.0.0.1."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from api_support import KEY, RecordingCache, requests_for
from fake_openai import FakeOpenAI

from distjudge_eval.errors import UserError
from distjudge_eval.models.openai_judge import APIJudgeError, OpenAIJudgeLM, redact


def judge(server: FakeOpenAI, **kwargs: Any) -> tuple[OpenAIJudgeLM, RecordingCache]:
    lm = OpenAIJudgeLM(model="m", base_url=server.base_url, api_key=KEY, **kwargs)
    cache = RecordingCache()
    lm.set_cache_hook(cache)  # type: ignore[arg-type]
    return lm, cache


def test_a_fatal_error_stops_the_run_and_keeps_finished_items() -> None:
    with FakeOpenAI(["ok", "ok", "nologprobs"], delay=0.05) as server:
        lm, cache = judge(server, num_concurrent=2)
        with pytest.raises(APIJudgeError, match=r"no logprobs.*items done; they are cached"):
            lm.loglikelihood(requests_for(30), disable_tqdm=True)
        at_error = server.seen
        time.sleep(0.2)
        seen = server.seen
    assert seen == at_error  # nothing is sent once the error is raised
    # The failing request is the 3rd. The other worker's reply can land in the same instant and
    # its next request may leave before the stop is set: at most 3 + 2 (the old code sent 30).
    assert seen <= 3 + 2
    finished = {args[0] for _, args, _ in cache.items}
    assert len(finished) >= 2 and len(cache.items) == 3 * len(finished)  # 3 labels per item


def test_an_outage_is_reported_in_seconds() -> None:
    """Every request 503 on 20 items, 4 at a time: 8 failures in a row end the run (the old code
    tried every item max_retries times: 120 requests)."""
    with FakeOpenAI(default="503") as server:
        lm, _ = judge(server, num_concurrent=4, max_backoff=0.2)
        start = time.perf_counter()
        with pytest.raises(APIJudgeError, match=r"looks down: 8 requests in a row failed.*503"):
            lm.loglikelihood(requests_for(20), disable_tqdm=True)
        elapsed = time.perf_counter() - start
    assert server.seen <= 8 + 4 and elapsed < 5


def test_consecutive_failures_stop_before_retries_run_out() -> None:
    with FakeOpenAI(default="500") as server:
        lm, _ = judge(server, max_retries=10, max_consecutive_failures=3, max_backoff=0.01)
        with pytest.raises(APIJudgeError, match="3 requests in a row failed"):
            lm.loglikelihood(requests_for(5), disable_tqdm=True)
    assert server.seen == 3


def test_a_success_resets_the_failure_count() -> None:
    """Failures spread over a healthy run are retried, never mistaken for an outage."""
    with FakeOpenAI(["500", "ok", "500", "ok", "500", "ok"]) as server:
        lm, _ = judge(server, max_consecutive_failures=2, max_backoff=0.01)
        out = lm.loglikelihood(requests_for(3), disable_tqdm=True)
    assert len(out) == 9 and lm.retries == 3


def test_a_context_overflow_names_the_item_and_the_lengths() -> None:
    with FakeOpenAI(["ok", "400ctx"]) as server:
        lm, cache = judge(server)
        with pytest.raises(APIJudgeError) as caught:
            lm.loglikelihood(requests_for(4), disable_tqdm=True)
    message = str(caught.value)
    assert "item 1 of distjudge_snli" in message
    assert "prompt 16 characters = 3000 tokens, server limit 2048 tokens" in message
    assert "longer context" in message and "\n" not in message
    assert server.seen == 2 and len(cache.items) == 3  # item 0 kept


@pytest.mark.parametrize("key", [KEY, "plain-token-4242"])
def test_an_echoed_authorization_header_is_redacted(key: str) -> None:
    with FakeOpenAI(["400echo"]) as server:
        lm = OpenAIJudgeLM(model="m", base_url=server.base_url, api_key=key)
        with pytest.raises(APIJudgeError) as caught:
            lm.loglikelihood(requests_for(1), disable_tqdm=True)
    assert server.headers[0]["Authorization"] == f"Bearer {key}"  # the server did get the key
    message = str(caught.value)
    assert "headers received" in message and "[redacted]" in message
    assert key not in message and "SECRET" not in message and "4242" not in message


def test_redaction_patterns() -> None:
    text = (
        "{'Authorization': 'Bearer abc.def'} Authorization: xyz "
        '"authorization":"Bearer q1"  bearer tok9 key sk-proj-AbC_d-9 mykey123'
    )
    out = redact(text, "mykey123")
    for secret in ("abc.def", "xyz", "q1", "tok9", "AbC_d-9", "mykey123"):
        assert secret not in out, (secret, out)


def test_a_refused_key_says_what_to_check() -> None:
    with FakeOpenAI(["401"]) as server:
        lm, _ = judge(server)
        with pytest.raises(UserError, match=r"HTTP 401.*check \$OPENAI_API_KEY"):
            lm.loglikelihood(requests_for(2), disable_tqdm=True)
    assert server.seen == 1


def cli(server: FakeOpenAI, out: Path, data_dir: Path, cache: Path, limit: int) -> list[str]:
    args = f"model=fake-judge,base_url={server.base_url},api_key={KEY},num_concurrent=2"
    cmd = [sys.executable, "-m", "distjudge_eval.cli", "eval", "--model", "openai-judge"]
    cmd += ["--model_args", args, "--tasks", "distjudge_snli", "--limit", str(limit)]
    cmd += ["--output_path", str(out), "--data_dir", str(data_dir), "--use_cache", str(cache)]
    return cmd


def test_one_ctrl_c_stops_sending(tmp_path: Path, data_dir: Path) -> None:
    """SIGINT after 4 requests: at most the 2 in flight follow, the process ends by itself, and
    the items that finished are cached (the rerun sends only the rest). Requests after the 4th
    are held until the CLI says it stopped, so the count cannot depend on how promptly this
    test's poll is scheduled on a loaded machine."""
    cache, n, k = tmp_path / "cache" / "lm", 20, 4
    with FakeOpenAI(delay=0.3, hold_after=k) as server:
        proc = subprocess.Popen(
            cli(server, tmp_path / "run1", data_dir, cache, n),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            # Ctrl-C as a terminal delivers it: a test run started in the background (`&`
            # without job control) ignores SIGINT, and the child would inherit that
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            deadline = time.monotonic() + 300
            while server.seen < k and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            assert server.seen >= k, proc.communicate(timeout=60)[1][-3000:]
            lines: list[str] = []
            noticed = threading.Event()

            def read_stderr() -> None:
                for line in proc.stderr:
                    lines.append(line)
                    if "interrupted, sending no more requests" in line:
                        noticed.set()

            reader = threading.Thread(target=read_stderr, daemon=True)
            reader.start()
            proc.send_signal(signal.SIGINT)
            noticed.wait(30)  # the held requests are answered only once the stop is noticed
            server.release.set()
            proc.wait(timeout=30)  # one Ctrl-C is enough
            reader.join(10)
            err = "".join(lines)
        finally:
            if proc.poll() is None:
                proc.kill()
        first = server.seen
        assert first <= k + 2, f"{first} requests after SIGINT at {k}"
        assert "interrupted, sending no more requests" in err and KEY not in err
        rerun = subprocess.run(
            cli(server, tmp_path / "run2", data_dir, cache, n),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        second = server.seen - first
    assert second <= n - (k - 2)  # the k - 2 answered before the signal were not sent again
    assert first + second >= n
    (samples,) = (tmp_path / "run2").glob("**/samples_distjudge_snli_*.jsonl")
    assert len(samples.read_text().splitlines()) == n
    assert all(json.loads(line)["ece"]["q"] for line in samples.open())
