"""``openai-judge``: label distributions from an OpenAI-compatible chat API's ``top_logprobs``.

lm-eval's chat backends refuse log-likelihood requests. This one sends **one** chat request per
item (the item's label requests share one prompt), asks for one output token with
``logprobs=true, top_logprobs=N, temperature=0``, and maps the returned candidate tokens to the
item's labels, as the local ``first_token`` readout does:

- a token counts for a label when, stripped of whitespace and brackets and lower-cased, it equals
  one of the label's variants (the label or a synonym declared in ``distjudge_eval.labels``) or is
  a prefix of variants of exactly one label ("contra" → contradiction); ambiguous tokens count
  for no label. Probabilities of all tokens of a label are summed.
- a label with no token among the top N gets an explicit floor: min(smallest returned
  probability, unreturned mass / number of missing labels), at least 1e-12. The mass that the
  mapped tokens cover is reported per item and as the task metric ``label_mass``.

Model args: ``model`` (required), ``base_url`` (default OpenAI), ``api_key`` (default
``$OPENAI_API_KEY``; never logged or written), ``top_logprobs`` (20), ``num_concurrent`` (1),
``max_retries`` (6 attempts in all), ``timeout`` (60 s), ``max_backoff`` (30 s).
Temperature is always 0 and no model name changes that.

Verbalized tasks (``generate_until``) get one greedy chat completion per item, with the task's
stop sequences sent as ``stop`` (and applied again to the reply) and ``max_gen_toks`` as
``max_tokens``; the reply is parsed by ``distjudge_eval.verbalized``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import requests
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model
from tenacity import (
    RetryCallState,
    retry,
    retry_if_exception_type,
    stop_after_attempt,
)
from tqdm import tqdm

from distjudge_eval.labels import declared_synonyms
from distjudge_eval.verbalized import cut_at_stops, stop_sequences

logger = logging.getLogger("distjudge")
OPENAI_BASE_URL = "https://api.openai.com/v1"
PROB_FLOOR = 1e-12
STRIP = " \t\n\r[](){}<>*\"'`.:,;"


class TransientAPIError(Exception):
    """A failure worth retrying (429, 5xx, timeout, dropped connection, truncated body)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class APIJudgeError(RuntimeError):
    """A failure that retrying cannot fix, or retries exhausted; names the item."""


@dataclass
class LabelMatcher:
    """Maps returned tokens to label indices (exact variants, then unambiguous prefixes)."""

    variants: list[set[str]]

    @classmethod
    def for_labels(cls, labels: Sequence[str]) -> LabelMatcher:
        stripped = [label.strip() for label in labels]
        synonyms = declared_synonyms(stripped)
        variants = []
        for label in stripped:
            words = (label, *synonyms.get(label, ()))
            variants.append({normalise(w) for w in words if normalise(w)})
        return cls(variants)

    def match(self, token: str) -> int | None:
        key = normalise(token)
        if not key:
            return None
        exact = [i for i, vs in enumerate(self.variants) if key in vs]
        if len(exact) == 1:
            return exact[0]
        if exact:
            return None
        prefix = [i for i, vs in enumerate(self.variants) if any(v.startswith(key) for v in vs)]
        return prefix[0] if len(prefix) == 1 else None


def normalise(token: str) -> str:
    return token.strip(STRIP).lower()


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


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


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
        **_ignored: Any,
    ) -> None:
        super().__init__()
        self.model = model
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_BASE_URL).rstrip(
            "/"
        )
        self._api_key = api_key or os.environ.get("OPENAI_API_KEY") or ""
        self.top_logprobs = int(top_logprobs)
        self.num_concurrent = max(int(num_concurrent), 1)
        self.max_retries = max(int(max_retries), 1)
        self.timeout = float(timeout)
        self.max_backoff = float(max_backoff)
        self.retries = 0
        self.requests_sent = 0
        self.usage = {"prompt_tokens": 0, "completion_tokens": 0}
        self._lock = threading.Lock()
        self._session = requests.Session()

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
        bar = tqdm(total=len(groups), disable=disable_tqdm, desc="openai-judge requests")

        def score(item: tuple[str, list[int]]) -> None:
            context, idx = item
            labels = [requests_[i].args[1] for i in idx]
            where = f"item {requests_[idx[0]].doc_id} of {requests_[idx[0]].task_name}"
            lps, _covered = self.score_item(context, labels, where)
            best = max(range(len(lps)), key=lps.__getitem__)
            for j, i in enumerate(idx):
                results[i] = (lps[j], j == best)
                self.cache_hook.add_partial("loglikelihood", requests_[i].args, results[i])
            bar.update(1)

        with ThreadPoolExecutor(max_workers=self.num_concurrent) as pool:
            for future in [pool.submit(score, item) for item in groups.items()]:
                future.result()  # re-raise the first failure; finished items stay cached
        bar.close()
        print(self.usage_summary())
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
        bar = tqdm(total=len(requests_), disable=disable_tqdm, desc="openai-judge generations")

        def generate(i: int) -> None:
            context, gen_kwargs = requests_[i].args
            where = f"item {requests_[i].doc_id} of {requests_[i].task_name}"
            results[i] = self.generate_item(context, dict(gen_kwargs or {}), where)
            self.cache_hook.add_partial("generate_until", requests_[i].args, results[i])
            bar.update(1)

        with ThreadPoolExecutor(max_workers=self.num_concurrent) as pool:
            for future in [pool.submit(generate, i) for i in range(len(requests_))]:
                future.result()
        bar.close()
        print(self.usage_summary())
        return results  # type: ignore[return-value]

    # -- one item -------------------------------------------------------------------------
    def score_item(
        self, context: str, labels: Sequence[str], where: str
    ) -> tuple[list[float], float]:
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": context}],
            "max_tokens": 1,
            "temperature": 0.0,
            "logprobs": True,
            "top_logprobs": self.top_logprobs,
        }
        data = self._chat(body, where)
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
        until = stop_sequences(gen_kwargs)
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": context}],
            "max_tokens": int(gen_kwargs.get("max_gen_toks", 256)),
            "temperature": 0.0,
        }
        if until:
            body["stop"] = until[:4]  # the OpenAI API takes at most four stop sequences
        data = self._chat(body, where)
        try:
            text = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise APIJudgeError(f"{where}: the response has no message content") from None
        # servers may ignore `stop`, or take only four of them
        return cut_at_stops(text or "", until)

    def _chat(self, body: dict[str, Any], where: str) -> dict[str, Any]:
        """One chat completion with retries; counts token usage."""
        try:
            data = self._post_with_retries(body)
        except TransientAPIError as exc:
            raise APIJudgeError(
                f"{where}: gave up after {self.max_retries} attempts: {exc}"
            ) from None
        usage = data.get("usage") or {}
        with self._lock:
            for key in self.usage:
                self.usage[key] += int(usage.get(key) or 0)
        return data

    def _post_with_retries(self, body: dict[str, Any]) -> dict[str, Any]:
        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            backoff = min(0.5 * 2 ** (state.attempt_number - 1), self.max_backoff)
            if isinstance(exc, TransientAPIError) and exc.retry_after is not None:
                return min(exc.retry_after, self.max_backoff)
            return backoff

        def count(state: RetryCallState) -> None:
            with self._lock:
                self.retries += 1

        call = retry(
            retry=retry_if_exception_type(TransientAPIError),
            stop=stop_after_attempt(self.max_retries),
            wait=wait,
            before_sleep=count,
            reraise=True,
        )(self._post_once)
        return call(body)

    def _post_once(self, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        with self._lock:
            self.requests_sent += 1
        try:
            response = self._session.post(
                f"{self.base_url}/chat/completions",
                data=json.dumps(body),
                headers=headers,
                timeout=self.timeout,
            )
        except requests.Timeout:
            raise TransientAPIError(f"timed out after {self.timeout:.0f} s") from None
        except requests.ConnectionError as exc:
            raise TransientAPIError(f"connection failed: {type(exc).__name__}") from None
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientAPIError(
                f"HTTP {response.status_code}", retry_after=_retry_after(response)
            )
        if response.status_code >= 400:
            raise APIJudgeError(f"HTTP {response.status_code}: {response.text[:300]}")
        try:
            return response.json()
        except ValueError:
            raise TransientAPIError("the response body is not complete JSON") from None

    def usage_summary(self) -> str:
        return (
            f"openai-judge: {self.requests_sent} HTTP requests ({self.retries} retries), "
            f"{self.usage['prompt_tokens']} prompt + {self.usage['completion_tokens']} "
            f"completion tokens"
        )
