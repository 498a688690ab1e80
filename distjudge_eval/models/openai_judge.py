"""``openai-judge``: label distributions from an OpenAI-compatible chat API's ``top_logprobs``.

lm-eval's chat backends refuse log-likelihood requests. This one sends **one** chat request per
item (the item's label requests share one prompt), asks for one output token with
``logprobs=true, top_logprobs=N, temperature=0``, and maps the returned candidate tokens to the
item's labels, as the local ``first_token`` readout does:

- which label a token stands for is decided by the one policy of ``distjudge_eval.label_match``
  (shared with the local ``first_token`` readout): stripped of whitespace and brackets and
  lower-cased, it equals variants of exactly one label (the label or a declared synonym) or is
  a prefix of variants of exactly one label ("contra" → contradiction); ambiguous tokens count
  for no label. Probabilities of all tokens of a label are summed.
- a label with no token among the top N gets an explicit floor: min(smallest returned
  probability, unreturned mass / number of missing labels), at least 1e-12. The mass that the
  mapped tokens cover is reported per item and as the task metric ``label_mass``.

Transport is the ``openai`` client (connection pool, time-outs, typed errors) with its own
retries off (``max_retries=0``): the retry policy below is ours, because the client's neither
caps ``Retry-After`` by ``max_backoff``, nor stops on a run of failures, nor names the item.
Nothing upstream reads label distributions from ``top_logprobs``; that part is ours too.

Model args (any other key is an error that lists these): ``model`` (required), ``base_url``
(default OpenAI), ``api_key`` (default: the key given to :func:`set_api_key`, else
``$OPENAI_API_KEY``; never logged or written),
``top_logprobs`` (20), ``num_concurrent`` (1), ``max_retries`` (6 attempts in all), ``timeout``
(60 s), ``max_backoff`` (30 s), ``max_consecutive_failures`` (8; 0 turns the check off);
``batch`` (false: true sends the requests through the Batch API, see ``openai_batch``),
``batch_poll_s`` (10), ``batch_max_wait_s`` (26 h), ``batch_max_rounds`` (3), ``batch_dir``.
Temperature is always 0 and no model name changes that.

Stopping. At most ``num_concurrent`` requests are in flight and a new one starts only when one
ends, so a run can stop without draining a queue. The run stops sending at the first fatal error
(a 4xx other than 408/429, a response without logprobs, an item whose ``max_retries`` attempts
all failed) and when ``max_consecutive_failures`` requests in a row failed with a 5xx, a time-out
or a dropped connection (the server is down; 429 "slow down" does not count). One Ctrl-C stops
it the same way. Requests already in flight get a few seconds to finish; every finished item is
in lm-eval's cache (``--use_cache``) so a rerun sends only the rest. Error messages name the item
and never carry the API key or an echoed ``Authorization`` header.

Verbalized tasks (``generate_until``) get one greedy chat completion per item, with the task's
stop sequences sent as ``stop`` (and applied again to the reply) and ``max_gen_toks`` as
``max_tokens``; the reply is parsed by ``distjudge_eval.verbalized``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import openai
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from tqdm import tqdm

from distjudge_eval.errors import UserError
from distjudge_eval.label_match import LabelMatcher, normalise  # noqa: F401  (re-exported)
from distjudge_eval.models.args import check_openai_key, openai_base_url, reject_unknown
from distjudge_eval.settings import truthy
from distjudge_eval.verbalized import cut_at_stops, stop_sequences

logger = logging.getLogger("distjudge")
T = TypeVar("T")
PROB_FLOOR = 1e-12
STOP_GRACE_S = 5.0  # how long requests in flight may finish after a stop, so they are cached
BODY_EXCERPT = 300
MODEL_ARGS = (
    "model",
    "base_url",
    "api_key",
    "top_logprobs",
    "num_concurrent",
    "max_retries",
    "timeout",
    "max_backoff",
    "max_consecutive_failures",
    "batch",
    "batch_poll_s",
    "batch_max_wait_s",
    "batch_max_rounds",
    "batch_dir",
)


_PROCESS_API_KEY: str | None = None


def set_api_key(key: str | None) -> None:
    """The API key for judges built later in this process. ``distjudge eval`` takes ``api_key=``
    out of ``--model_args`` (lm-eval writes model args into its results) and hands it over here,
    so the key travels neither through lm-eval nor through ``os.environ``."""
    global _PROCESS_API_KEY
    _PROCESS_API_KEY = key


def resolve_api_key(explicit: str | None) -> str:
    """``api_key=`` if given, else the key set in-process, else ``$OPENAI_API_KEY``, else ""."""
    return explicit or _PROCESS_API_KEY or os.environ.get("OPENAI_API_KEY") or ""


class TransientAPIError(Exception):
    """A failure worth retrying (429, 5xx, timeout, dropped connection, truncated body)."""

    def __init__(self, message: str, retry_after: float | None = None, outage: bool = True) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.outage = outage  # counts toward max_consecutive_failures (a 429 does not)


class APIJudgeError(UserError, RuntimeError):
    """A failure that retrying cannot fix, or retries exhausted; names the item and what to do."""


class StoppedError(Exception):
    """The run is stopping (fatal error elsewhere, or Ctrl-C): abandon this item quietly."""


# -- keeping secrets out of messages ----------------------------------------------------------
_SECRET_PATTERNS = [
    (
        re.compile(r"(?i)(authorization\\?[\"']?\s*[:=]\s*\\?[\"']?)[^\"'\\,}\]\n]+"),
        r"\1[redacted]",
    ),
    (re.compile(r"(?i)\bbearer\s+[^\s\"'\\,}\]]+"), "Bearer [redacted]"),
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{3,}"), "sk-[redacted]"),
]


def redact(text: str, secret: str | None = None) -> str:
    """The text with the key, ``Authorization`` values, bearer tokens and ``sk-`` keys masked:
    a 4xx body may echo the request's headers."""
    if secret and len(secret) >= 4:
        text = text.replace(secret, "[redacted]")
    for pattern, repl in _SECRET_PATTERNS:
        text = pattern.sub(repl, text)
    return text


# -- reading 4xx bodies -------------------------------------------------------------------------
_CONTEXT_HINTS = (
    "context length",  # OpenAI, vLLM, llama-cpp-python
    "context size",  # llama.cpp server
    "context window",
    "context_length",
    "maximum model length",  # vLLM
)
_PROMPT_TOKENS = (r"(\d+) in the messages", r"resulted in (\d+) tokens", r"requested (\d+) tokens")


def _error_text(body: str) -> str:
    """The server's error message if the body is OpenAI-style JSON, else the body itself."""
    try:
        data = json.loads(body)
    except ValueError:
        return body
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict) and isinstance(err.get("message"), str):
        return err["message"]
    if isinstance(err, str):
        return err
    return body


def _context_numbers(body: str) -> tuple[int | None, int | None]:
    """(prompt tokens, server limit) from an overflow error, where the server says them:
    llama.cpp's ``n_prompt_tokens``/``n_ctx`` fields, or OpenAI/vLLM/llama-cpp-python's
    "maximum context length is N tokens ... M in the messages / resulted in M tokens"."""
    try:
        err = json.loads(body).get("error")
    except (ValueError, AttributeError):
        err = None
    if isinstance(err, dict) and "n_ctx" in err:
        prompt = err.get("n_prompt_tokens")
        return (int(prompt) if prompt is not None else None), int(err["n_ctx"])
    limit = re.search(r"maximum context length is (\d+)", body)
    used = None
    for pattern in _PROMPT_TOKENS:  # most specific first: "requested" includes the completion
        if found := re.search(pattern, body):
            used = int(found.group(1))
            break
    return used, (int(limit.group(1)) if limit else None)


def client_error_message(status: int, body: str, prompt_chars: int) -> str:
    """What a 4xx means and what to do; the server's text is shown only in excerpt."""
    text = _error_text(body)
    excerpt = text[:BODY_EXCERPT].replace("\n", " ")
    if status in (401, 403):
        return f"HTTP {status}, the server refused the API key: check $OPENAI_API_KEY ({excerpt})"
    if status == 404:
        return f"HTTP 404, no such model or endpoint: check model= and base_url= ({excerpt})"
    if status == 429:
        return f"HTTP 429 insufficient_quota, the account has no quota left ({excerpt})"
    lowered = body.lower()
    if any(hint in lowered for hint in _CONTEXT_HINTS):
        used, limit = _context_numbers(body)
        sizes = f"prompt {prompt_chars} characters"
        sizes += f" = {used} tokens" if used is not None else ""
        sizes += f", server limit {limit} tokens" if limit is not None else ""
        return (
            f"HTTP {status}, the prompt does not fit the model's context ({sizes}): use a model "
            f"or server with a longer context (llama.cpp: --ctx-size / --n_ctx), or a shorter "
            f"prompt template for the task"
        )
    return f"HTTP {status}: {excerpt}"


def label_logprobs(
    top: Sequence[dict[str, Any]], matcher: LabelMatcher
) -> tuple[list[float], float]:
    """Per-label log-probabilities from one position's top_logprobs, and the mapped mass."""
    n = len(matcher.variants)
    mass = [0.0] * n
    returned = 0.0
    smallest = 1.0
    for entry in top:
        prob = math.exp(float(entry["logprob"]))
        returned += prob
        smallest = min(smallest, prob)
        idx = matcher.match(str(entry["token"]))
        if idx is not None:
            mass[idx] += prob
    missing = [i for i in range(n) if mass[i] == 0.0]
    if missing:
        residual = max(1.0 - returned, 0.0) / len(missing)
        floor = max(min(smallest, residual) if top else PROB_FLOOR, PROB_FLOOR)
        for i in missing:
            mass[i] = floor
    covered = sum(m for i, m in enumerate(mass) if i not in missing)
    return [math.log(m) for m in mass], covered


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _prompt_chars(body: dict[str, Any]) -> int:
    return sum(len(str(m.get("content", ""))) for m in body.get("messages", ()))


# -- running items with a stop switch -----------------------------------------------------------
def run_stoppable(
    jobs: Sequence[Callable[[], None]], workers: int, stop: threading.Event, grace: float
) -> list[BaseException]:
    """Run ``jobs`` on ``workers`` daemon threads, each taking the next job only when its last
    one ended; returns the errors. The first error, or Ctrl-C in the calling thread, sets
    ``stop``: no job starts after it, and jobs in flight get ``grace`` seconds to end (their
    results are kept) before the errors are returned, or the KeyboardInterrupt re-raised."""
    lock = threading.Lock()
    queue = iter(jobs)
    errors: list[BaseException] = []

    def worker() -> None:
        while not stop.is_set():
            with lock:
                job = next(queue, None)
            if job is None:
                return
            try:
                job()
            except StoppedError:
                return
            except BaseException as exc:  # reported to the caller
                with lock:
                    errors.append(exc)
                stop.set()
                return

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(min(workers, len(jobs)))]
    for thread in threads:
        thread.start()
    try:
        _join(threads, stop, grace)
    except KeyboardInterrupt:
        stop.set()
        busy = sum(t.is_alive() for t in threads)
        print(
            f"\nopenai-judge: interrupted, sending no more requests; waiting up to {grace:.0f} s "
            f"for {busy} in flight (Ctrl-C again to quit now)",
            file=sys.stderr,
            flush=True,
        )
        deadline = time.monotonic() + grace
        for thread in threads:
            thread.join(max(deadline - time.monotonic(), 0.0))
        raise
    return errors


def _join(threads: list[threading.Thread], stop: threading.Event, grace: float) -> None:
    """Wait for the workers; once ``stop`` is set, wait at most ``grace`` more seconds (a hung
    request must not hold the error back for the whole HTTP time-out)."""
    deadline: float | None = None
    for thread in threads:
        while thread.is_alive():
            thread.join(0.05)  # short waits: Ctrl-C reaches this thread at once
            if stop.is_set():
                deadline = deadline or time.monotonic() + grace
                if time.monotonic() > deadline:
                    return


@register_model("openai-judge")
class OpenAIJudgeLM(LM):
    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        top_logprobs: int | str = 20,
        num_concurrent: int | str = 1,
        max_retries: int | str = 6,
        timeout: float | str = 60.0,
        max_backoff: float | str = 30.0,
        max_consecutive_failures: int | str = 8,
        batch: bool | str = False,
        batch_poll_s: float | str = 10.0,
        batch_max_wait_s: float | str = 26 * 3600.0,
        batch_max_rounds: int | str = 3,
        batch_dir: str | None = None,
        **harness: Any,
    ) -> None:
        reject_unknown("openai-judge", harness, MODEL_ARGS)
        super().__init__()
        self.model = model
        self.base_url = openai_base_url(base_url)
        self._api_key = resolve_api_key(api_key)
        check_openai_key(self.base_url, self._api_key)
        self.top_logprobs = int(top_logprobs)
        self.num_concurrent = max(int(num_concurrent), 1)
        self.max_retries = max(int(max_retries), 1)
        self.timeout = float(timeout)
        self.max_backoff = float(max_backoff)
        self.max_consecutive_failures = max(int(max_consecutive_failures), 0)
        self.batch = truthy(batch)
        self.batch_settings = BatchSettings(
            poll_s=float(batch_poll_s),
            max_wait_s=float(batch_max_wait_s),
            max_rounds=max(int(batch_max_rounds), 1),
            batch_dir=Path(batch_dir) if batch_dir else DEFAULT_BATCH_DIR,
        )
        self.retries = 0
        self.requests_sent = 0
        self.failures_in_row = 0
        self.usage = {"prompt_tokens": 0, "completion_tokens": 0}
        self._lock = threading.Lock()
        self._client = make_client(self.base_url, self._api_key, self.timeout)
        self.auth_headers = auth_headers(self._api_key)
        self._stop = threading.Event()  # set: start no more requests
        self._abandoned = threading.Event()  # set: the run returned; drop late replies

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIJudgeLM(model={self.model!r}, base_url={self.base_url!r})"

    # -- lm-eval entry points ------------------------------------------------------------
    def loglikelihood(
        self, requests_: list[Any], disable_tqdm: bool = False
    ) -> list[tuple[float, bool]]:
        groups: dict[str, list[int]] = {}
        for i, req in enumerate(requests_):
            groups.setdefault(req.args[0], []).append(i)
        results: list[tuple[float, bool] | None] = [None] * len(requests_)

        def store(idx: list[int], lps: list[float]) -> None:
            best = max(range(len(lps)), key=lps.__getitem__)
            for j, i in enumerate(idx):
                results[i] = (lps[j], j == best)
                self._cache("loglikelihood", requests_[i].args, results[i])

        def score(context: str, idx: list[int]) -> None:
            labels = [requests_[i].args[1] for i in idx]
            store(idx, self.score_item(context, labels, _where(requests_[idx[0]]))[0])

        if self.batch:
            items = list(groups.items())
            answers = self._run_batch(
                [self.score_body(c) for c, _ in items],
                [_where(requests_[ix[0]]) for _, ix in items],
            )
            for (_, idx), (data, where) in zip(items, answers):
                store(idx, self.readout(data, [requests_[i].args[1] for i in idx], where)[0])
            return results  # type: ignore[return-value]
        jobs = [lambda c=c, idx=idx: score(c, idx) for c, idx in groups.items()]
        self._run(jobs, "openai-judge requests", disable_tqdm)
        return results  # type: ignore[return-value]

    def apply_chat_template(self, chat_history: list[dict[str, str]], **kwargs: Any) -> str:
        raise ValueError(
            "openai-judge sends the prompt as a chat message and the server applies its own chat "
            "template: run it without --apply_chat_template"
        )

    def loglikelihood_rolling(self, requests_: list[Any]) -> list[float]:
        raise NotImplementedError("openai-judge scores labels; it has no rolling log-likelihood")

    def generate_until(self, requests_: list[Any], disable_tqdm: bool = False) -> list[str]:
        """Verbalized judgments: one greedy chat completion per request, cut at ``until``."""
        results: list[str | None] = [None] * len(requests_)
        if self.batch:
            kwargs = [dict(r.args[1] or {}) for r in requests_]
            answers = self._run_batch(
                [self.generate_body(r.args[0], kw) for r, kw in zip(requests_, kwargs)],
                [_where(r) for r in requests_],
            )
            for i, (data, where) in enumerate(answers):
                results[i] = self.reply_text(data, kwargs[i], where)
                self._cache("generate_until", requests_[i].args, results[i])
            return results  # type: ignore[return-value]

        def generate(i: int) -> None:
            context, gen_kwargs = requests_[i].args
            results[i] = self.generate_item(context, dict(gen_kwargs or {}), _where(requests_[i]))
            self._cache("generate_until", requests_[i].args, results[i])

        jobs = [lambda i=i: generate(i) for i in range(len(requests_))]
        self._run(jobs, "openai-judge generations", disable_tqdm)
        return results  # type: ignore[return-value]

    # -- the run --------------------------------------------------------------------------
    def _run_batch(
        self, bodies: list[dict[str, Any]], wheres: list[str]
    ) -> list[tuple[dict[str, Any], str]]:
        """Every body through the Batch API (see ``openai_batch``), answers in input order."""
        self._stop, self._abandoned = threading.Event(), threading.Event()
        self.failures_in_row = 0
        lines = {f"item-{n}": body for n, body in enumerate(bodies)}
        where = {f"item-{n}": w for n, w in enumerate(wheres)}
        dbdict = self.cache_hook.dbdict
        cache_file = getattr(dbdict, "filename", None) if dbdict is not None else None
        path = state_path(
            cache_file, self.batch_settings.batch_dir, requests_hash(self.base_url, lines)
        )
        answers = BatchRun(self, lines, where, path, self.batch_settings).run()
        for data in answers.values():
            self.count_usage(data)
        print(f"{self.usage_summary()}, {len(answers)} answers from the Batch API", flush=True)
        return [(answers[c], where[c]) for c in lines]

    def _run(self, jobs: list[Callable[[], None]], desc: str, disable_tqdm: bool) -> None:
        """All items, stopping at the first fatal error or Ctrl-C (see the module docstring)."""
        self._stop, self._abandoned = threading.Event(), threading.Event()
        self.failures_in_row = 0
        bar = tqdm(total=len(jobs), disable=disable_tqdm, desc=desc)
        done = [0]

        def counted(job: Callable[[], None]) -> Callable[[], None]:
            def run() -> None:
                job()
                with self._lock:
                    done[0] += 1
                bar.update(1)

            return run

        try:
            errors = run_stoppable(
                [counted(j) for j in jobs], self.num_concurrent, self._stop, STOP_GRACE_S
            )
        finally:
            self._abandoned.set()  # replies after the grace period are not cached
            bar.close()
            print(self.usage_summary(), flush=True)
        if not errors:
            return
        first = errors[0]
        if not isinstance(first, APIJudgeError):
            raise first  # a bug, not an API failure: keep its traceback
        raise self._stopped_error(first, done[0], len(jobs)) from None

    def _stopped_error(self, first: APIJudgeError, done: int, total: int) -> APIJudgeError:
        keep = (
            "they are cached (--use_cache), so a rerun sends only the rest"
            if self.cache_hook.dbdict is not None
            else "add --use_cache DIR so that a rerun keeps finished items"
        )
        reason = redact(str(first), self._api_key)
        return APIJudgeError(
            f"openai-judge stopped: {reason} ({done} of {total} items done; {keep})"
        )

    def _cache(self, kind: str, args: Any, result: Any) -> None:
        """Cache a finished item, unless the run was abandoned (the process may be exiting)."""
        if not self._abandoned.is_set():
            self.cache_hook.add_partial(kind, args, result)

    # -- one item -------------------------------------------------------------------------
    def score_item(
        self, context: str, labels: Sequence[str], where: str
    ) -> tuple[list[float], float]:
        return self.readout(self._chat(self.score_body(context), where), labels, where)

    def score_body(self, context: str) -> dict[str, Any]:
        """The chat request of one item's label distribution (chat and batch mode alike)."""
        return {
            "model": self.model,
            "messages": [{"role": "user", "content": context}],
            "max_tokens": 1,
            "temperature": 0.0,
            "logprobs": True,
            "top_logprobs": self.top_logprobs,
        }

    def readout(
        self, data: dict[str, Any], labels: Sequence[str], where: str
    ) -> tuple[list[float], float]:
        """Per-label log-probabilities and mapped mass from one chat completion: the one code
        path from a response to q, for the chat and the batch mode."""
        try:
            top = data["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
        except (KeyError, IndexError, TypeError):
            raise APIJudgeError(
                f"{where}: the response has no logprobs (model {self.model!r} may not allow "
                f"them, or the server ignores `logprobs`); refusing to guess a distribution"
            ) from None
        if not top:
            raise APIJudgeError(f"{where}: the response's top_logprobs is empty")
        return label_logprobs(top, LabelMatcher.for_labels(labels))

    def generate_item(self, context: str, gen_kwargs: dict[str, Any], where: str) -> str:
        data = self._chat(self.generate_body(context, gen_kwargs), where)
        return self.reply_text(data, gen_kwargs, where)

    def generate_body(self, context: str, gen_kwargs: dict[str, Any]) -> dict[str, Any]:
        until = stop_sequences(gen_kwargs)
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": context}],
            "max_tokens": int(gen_kwargs.get("max_gen_toks", 256)),
            "temperature": 0.0,
        }
        if until:
            body["stop"] = until[:4]  # the OpenAI API takes at most four stop sequences
        return body

    def reply_text(self, data: dict[str, Any], gen_kwargs: dict[str, Any], where: str) -> str:
        try:
            text = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise APIJudgeError(f"{where}: the response has no message content") from None
        # servers may ignore `stop`, or take only four of them
        return cut_at_stops(text or "", stop_sequences(gen_kwargs))

    def _chat(self, body: dict[str, Any], where: str) -> dict[str, Any]:
        """One chat completion with retries; counts token usage."""
        data = self._post_with_retries(body, where)
        self.count_usage(data)
        return data

    def count_usage(self, data: dict[str, Any]) -> None:
        usage = data.get("usage") or {}
        with self._lock:
            for key in self.usage:
                self.usage[key] += int(usage.get(key) or 0)

    def _post_with_retries(self, body: dict[str, Any], where: str) -> dict[str, Any]:
        """One chat completion, with our retry policy (see :meth:`call_with_retries`)."""
        return self.call_with_retries(lambda: self._post_once(body, where), where)

    def call_with_retries(self, call: Callable[[], T], where: str) -> T:
        """``call()`` up to ``max_retries`` times with exponential backoff (``Retry-After``
        honoured, both capped by ``max_backoff``) while it raises :class:`TransientAPIError`;
        a stop ends the wait at once. The batch mode sends its file and batch calls through
        here too, so every API call follows one policy."""
        for attempt in range(1, self.max_retries + 1):
            if self._stop.is_set():
                raise StoppedError
            try:
                data = call()
            except TransientAPIError as exc:
                self._count_failure(exc, where)
                if attempt == self.max_retries:
                    raise APIJudgeError(
                        f"{where}: gave up after {self.max_retries} attempts: {exc}"
                    ) from None
                with self._lock:
                    self.retries += 1
                if self._stop.wait(self._backoff(attempt, exc)):
                    raise StoppedError from None
                continue
            with self._lock:
                self.failures_in_row = 0
            return data
        raise AssertionError("unreachable")

    def _backoff(self, attempt: int, exc: TransientAPIError) -> float:
        if exc.retry_after is not None:
            return min(exc.retry_after, self.max_backoff)
        return min(0.5 * 2 ** (attempt - 1), self.max_backoff)

    def _count_failure(self, exc: TransientAPIError, where: str) -> None:
        """A run of failed requests means the server is down: stop instead of retrying on."""
        if not exc.outage:
            return
        with self._lock:
            self.failures_in_row += 1
            n = self.failures_in_row
        if self.max_consecutive_failures and n >= self.max_consecutive_failures:
            raise APIJudgeError(
                f"the server at {self.base_url} looks down: {n} requests in a row failed "
                f"(last: {exc}, {where}); try again later (max_consecutive_failures= sets the "
                f"limit, 0 turns it off)"
            )

    def _post_once(self, body: dict[str, Any], where: str) -> dict[str, Any]:
        with self._lock:
            self.requests_sent += 1
        raw = self.api_call(
            lambda: self._client.chat.completions.with_raw_response.create(
                **body, extra_headers=self.auth_headers
            ),
            where,
            _prompt_chars(body),
        )
        try:  # parsed here, not by the client: a cut body is a retry, not a crash
            return json.loads(raw.http_response.text)
        except ValueError:
            raise TransientAPIError("the response body is not complete JSON") from None

    def api_call(self, call: Callable[[], T], where: str, prompt_chars: int = 0) -> T:
        """``call()`` with the client's typed errors sorted into ours: worth retrying
        (:class:`TransientAPIError`) or not (:class:`APIJudgeError`, naming ``where``)."""
        try:
            return call()
        except openai.APITimeoutError:
            raise TransientAPIError(f"timed out after {self.timeout:g} s") from None
        except openai.APIConnectionError as exc:
            cause = type(exc.__cause__ or exc).__name__
            raise TransientAPIError(f"connection failed: {cause}") from None
        except openai.APIStatusError as exc:
            response = exc.response
            status, text = response.status_code, response.text
        if status == 429 and "insufficient_quota" not in text:
            raise TransientAPIError(
                "HTTP 429", retry_after=_retry_after(response.headers), outage=False
            )
        if status == 408 or status >= 500:
            raise TransientAPIError(f"HTTP {status}", retry_after=_retry_after(response.headers))
        text = redact(text, self._api_key)
        raise APIJudgeError(f"{where}: {client_error_message(status, text, prompt_chars)}")

    def usage_summary(self) -> str:
        return (
            f"openai-judge: {self.requests_sent} HTTP requests ({self.retries} retries), "
            f"{self.usage['prompt_tokens']} prompt + {self.usage['completion_tokens']} "
            f"completion tokens"
        )


def make_client(base_url: str, api_key: str, timeout: float) -> openai.OpenAI:
    """An ``openai`` client with its retries off (ours decide); pass :func:`auth_headers` with
    every call."""
    return openai.OpenAI(
        api_key=api_key or "no-key", base_url=base_url, timeout=timeout, max_retries=0
    )


def auth_headers(api_key: str) -> dict[str, Any] | None:
    """Per-call headers: without a key (a local server) no ``Authorization`` header is sent at
    all, rather than a made-up one (the client accepts an omitted header only per call)."""
    return None if api_key else {"Authorization": openai.Omit()}


def _where(request: Any) -> str:
    return f"item {request.doc_id} of {request.task_name}"


from distjudge_eval.models.openai_batch import (  # noqa: E402  (it imports the errors above)
    DEFAULT_BATCH_DIR,
    BatchRun,
    BatchSettings,
    requests_hash,
    state_path,
)
