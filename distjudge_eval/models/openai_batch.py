"""openai-judge's Batch API mode: the same chat requests, sent as one batch at half the price.

Flow: the requests are written as JSONL (``custom_id`` = ``item-<n>`` in lm-eval's request
order), uploaded (``purpose=batch``), a batch is created, polled with backoff, its output and
error files downloaded and mapped back to items by ``custom_id``. The caller turns each response
body into q by the same code path as the chat mode (``OpenAIJudgeLM.readout``).

Resuming. A state file keyed by a hash of (base URL, every request line) holds the batch in
flight and every finished response. It lives beside lm-eval's ``--use_cache`` file when there is
one, else under ``batch_dir`` (default ``~/.cache/distjudge/batches``). A rerun with the same
requests finds it: it polls the saved batch instead of creating a new one, and items already
answered are never sent again. A batch that ends ``failed``/``expired``/``cancelled`` keeps its
finished lines; the rest (and lines that failed with 429/5xx) go into a new batch, at most
``batch_max_rounds`` batches in all. A line refused with another 4xx, or still failing after the
last round, is reported by item: nothing is dropped.

Every files/batches call goes through the judge's retry policy (Retry-After, bounded attempts,
consecutive-failure stop), so the batch mode fails the way the chat mode does.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distjudge_eval.models.openai_judge import APIJudgeError, redact

if TYPE_CHECKING:
    from distjudge_eval.models.openai_judge import OpenAIJudgeLM

logger = logging.getLogger("distjudge")
ENDPOINT = "/v1/chat/completions"
TERMINAL = ("completed", "failed", "expired", "cancelled")
DEFAULT_BATCH_DIR = Path("~/.cache/distjudge/batches")
MAX_POLL_S = 300.0  # the longest wait between two polls, however long the batch runs
NAMED = 5  # items named in an error message (the count says how many more)


@dataclass(frozen=True)
class BatchSettings:
    poll_s: float = 10.0
    max_wait_s: float = 26 * 3600.0  # the 24 h completion window, plus finalising
    max_rounds: int = 3
    batch_dir: Path = DEFAULT_BATCH_DIR


def requests_hash(base_url: str, lines: Mapping[str, dict[str, Any]]) -> str:
    """Identifies a request set: the same command on the same server gets the same state."""
    digest = hashlib.sha256(base_url.encode())
    for custom_id, body in lines.items():
        digest.update(json.dumps([custom_id, body], sort_keys=True).encode())
    return digest.hexdigest()


def state_path(cache_file: str | None, batch_dir: Path, digest: str) -> Path:
    """Beside lm-eval's cache file when there is one (deleting a cache deletes its batches
    too), else in ``batch_dir``."""
    if cache_file:
        cache = Path(cache_file)
        return cache.parent / f"{cache.name}.batch-{digest[:16]}.json"
    return batch_dir.expanduser() / f"{digest[:16]}.json"


class BatchRun:
    """One request set through the Batch API, resumable from its state file."""

    def __init__(
        self,
        lm: OpenAIJudgeLM,
        bodies: dict[str, dict[str, Any]],
        where: dict[str, str],
        path: Path,
        settings: BatchSettings,
    ) -> None:
        self.lm, self.bodies, self.where = lm, bodies, where
        self.path, self.settings = path, settings
        self.digest = requests_hash(lm.base_url, bodies)
        self.state = self._load()

    # -- state ---------------------------------------------------------------------------
    def _load(self) -> dict[str, Any]:
        if self.path.is_file():
            try:
                state = json.loads(self.path.read_text())
            except ValueError:
                raise APIJudgeError(
                    f"batch state {self.path} is not valid JSON: delete it to start over "
                    f"(a batch it named may still be running on the server)"
                ) from None
            if state.get("requests_hash") == self.digest:
                return state
        return {"requests_hash": self.digest, "batch_id": None, "batches": [], "done": {}}

    def _save(self) -> None:
        """Atomically: a run killed mid-write leaves the previous state, never a torn file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state))
        os.replace(tmp, self.path)

    # -- the run -------------------------------------------------------------------------
    def run(self) -> dict[str, dict[str, Any]]:
        """Response bodies by ``custom_id``, every one of them; raises naming failed items."""
        done: dict[str, dict[str, Any]] = self.state["done"]
        if done:
            self._log(f"{len(done)} of {len(self.bodies)} items already answered ({self.path})")
        last_error: dict[str, str] = {}
        while True:
            todo = [cid for cid in self.bodies if cid not in done]
            if not todo:
                return {cid: done[cid] for cid in self.bodies}
            if self.state["batch_id"] is None:
                if len(self.state["batches"]) >= self.settings.max_rounds:
                    raise self._items_error(
                        f"still failing after {self.settings.max_rounds} batches "
                        f"(batch_max_rounds=)",
                        {cid: last_error.get(cid, "not answered") for cid in todo},
                    )
                self._submit(todo)
            batch = self._poll(self.state["batch_id"])
            fatal = self._collect(batch, todo, done, last_error)
            self.state["batch_id"] = None
            self._save()
            if fatal:
                raise self._items_error("refused by the server", fatal)

    def _submit(self, todo: list[str]) -> None:
        jsonl = "".join(
            json.dumps({"custom_id": c, "method": "POST", "url": ENDPOINT, "body": self.bodies[c]})
            + "\n"
            for c in todo
        ).encode()
        lm, headers = self.lm, self.lm.auth_headers
        upload = lm.call_with_retries(
            lambda: lm.api_call(
                lambda: lm._client.files.create(
                    file=("distjudge_batch.jsonl", io.BytesIO(jsonl)),
                    purpose="batch",
                    extra_headers=headers,
                ),
                "batch input upload",
            ),
            "batch input upload",
        )
        batch = lm.call_with_retries(
            lambda: lm.api_call(
                lambda: lm._client.batches.create(
                    input_file_id=upload.id,
                    endpoint=ENDPOINT,
                    completion_window="24h",
                    metadata={"distjudge_requests": self.digest[:16]},
                    extra_headers=headers,
                ),
                "batch creation",
            ),
            "batch creation",
        )
        self.state["batch_id"] = batch.id
        self.state["batches"].append(batch.id)
        self._save()  # before any wait: a run killed from here on resumes this batch
        self._log(f"batch {batch.id} created: {len(todo)} requests (state {self.path})")

    def _poll(self, batch_id: str) -> Any:
        """The batch once it ends, polling with growing waits; a time limit or Ctrl-C leaves it
        running on the server, and a rerun polls it again."""
        lm = self.lm
        start = time.monotonic()
        wait = self.settings.poll_s
        seen: tuple[Any, ...] | None = None
        try:
            while True:
                batch = lm.call_with_retries(
                    lambda: lm.api_call(
                        lambda: lm._client.batches.retrieve(
                            batch_id, extra_headers=lm.auth_headers
                        ),
                        f"batch {batch_id}",
                    ),
                    f"batch {batch_id}",
                )
                counts = batch.request_counts
                now = (
                    batch.status,
                    counts.completed if counts else None,
                    counts.failed if counts else None,
                )
                if now != seen:
                    seen = now
                    total = counts.total if counts else "?"
                    self._log(
                        f"batch {batch_id}: {batch.status}, {now[1] or 0} done, "
                        f"{now[2] or 0} failed of {total}"
                    )
                if batch.status in TERMINAL:
                    return batch
                elapsed = time.monotonic() - start
                if elapsed >= self.settings.max_wait_s:
                    raise APIJudgeError(
                        f"batch {batch_id} is still {batch.status} after "
                        f"{self.settings.max_wait_s:g} s (batch_max_wait_s=); it keeps running on "
                        f"the server and {self.path} remembers it: rerun the same command to "
                        f"resume (nothing is sent twice)"
                    )
                time.sleep(min(wait, self.settings.max_wait_s - elapsed))
                wait = min(wait * 1.5, max(self.settings.poll_s, MAX_POLL_S))
        except KeyboardInterrupt:
            print(
                f"\nopenai-judge: interrupted; batch {batch_id} keeps running on the server and "
                f"{self.path} remembers it: rerun the same command to resume",
                file=sys.stderr,
                flush=True,
            )
            raise

    def _collect(
        self,
        batch: Any,
        todo: list[str],
        done: dict[str, dict[str, Any]],
        last_error: dict[str, str],
    ) -> dict[str, str]:
        """Sort the batch's lines into answers (kept), transient failures (next round) and
        refusals (returned, to be reported by item)."""
        fatal: dict[str, str] = {}
        answered: set[str] = set()
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            for line in self._download(file_id).splitlines():
                if not line.strip():
                    continue
                row = json.loads(line)
                cid = row.get("custom_id")
                if cid not in self.bodies or cid in done:
                    continue
                answered.add(cid)
                response = row.get("response") or {}
                status = int(response.get("status_code") or 0)
                if status == 200 and not row.get("error"):
                    done[cid] = response.get("body") or {}
                    last_error.pop(cid, None)
                    continue
                message = _line_error(row, status)
                if 400 <= status < 500 and status not in (408, 429):
                    fatal[cid] = message
                else:
                    last_error[cid] = message
        why = f"batch {batch.id} ended {batch.status}"
        if batch.errors and getattr(batch.errors, "data", None):
            why += ": " + "; ".join(str(e.message) for e in batch.errors.data[:3])
        for cid in todo:
            if cid not in answered:
                last_error[cid] = f"no line in the output ({why})"
        self._log(
            f"{why}: {sum(c in done for c in todo)} answered, {len(fatal)} refused, "
            f"{sum(c in last_error for c in todo)} to resend"
        )
        return fatal

    def _download(self, file_id: str) -> str:
        lm = self.lm
        content = lm.call_with_retries(
            lambda: lm.api_call(
                lambda: lm._client.files.content(file_id, extra_headers=lm.auth_headers),
                f"batch file {file_id}",
            ),
            f"batch file {file_id}",
        )
        return content.text

    def _items_error(self, what: str, errors: dict[str, str]) -> APIJudgeError:
        named = "; ".join(f"{self.where[c]}: {m}" for c, m in list(errors.items())[:NAMED])
        more = f" (and {len(errors) - NAMED} more)" if len(errors) > NAMED else ""
        answered = len(self.state["done"])
        return APIJudgeError(
            redact(
                f"{len(errors)} batch requests {what}: {named}{more}; the {answered} answered "
                f"are kept in {self.path}, so a rerun sends only the rest",
                self.lm._api_key,
            )
        )

    def _log(self, message: str) -> None:
        print(f"openai-judge: {message}", file=sys.stderr, flush=True)


def _line_error(row: dict[str, Any], status: int) -> str:
    """One line's failure in a few words: the error file's code, or the response's status."""
    error = row.get("error")
    if isinstance(error, dict):
        return f"{error.get('code') or 'error'}: {str(error.get('message') or '')[:200]}"
    body = (row.get("response") or {}).get("body")
    detail = body.get("error") if isinstance(body, dict) else None
    if isinstance(detail, dict):
        detail = detail.get("message")
    return f"HTTP {status}" + (f": {str(detail)[:200]}" if detail else "")
