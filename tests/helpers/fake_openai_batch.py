"""A local server with OpenAI's files and batches endpoints, for openai-judge's batch mode.

POST /v1/files (multipart), GET /v1/files/{id}/content, POST /v1/batches, GET /v1/batches/{id}.
Each created batch takes the next scripted outcome (then ``default``); it reports ``validating``,
then ``in_progress``, and ends at its third poll (a ``hold`` batch stays in progress until
:meth:`FakeBatchAPI.release`). Outcomes:

- ``ok``: every line answered;
- ``partial``: line 0 answered with HTTP 500, line 1 only in the error file, the rest answered;
- ``refuse``: line 0 answered with HTTP 400 (a refusal, not worth resending), the rest answered;
- ``expired``: the first half answered, the rest in the error file as ``batch_expired``;
- ``hold``: like ``ok``, once released.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import deque
from email.parser import BytesParser
from email.policy import default as email_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from fake_openai import completion

TERMINAL = {"ok": "completed", "partial": "completed", "refuse": "completed", "hold": "completed"}


class FakeBatchAPI:
    def __init__(self, script: list[str] | None = None, default: str = "ok") -> None:
        self.script: deque[str] = deque(script or [])
        self.default = default
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.inputs: list[list[dict[str, Any]]] = []  # request lines of each created batch
        self.headers: list[dict[str, str]] = []
        self.polls = 0
        self.released = threading.Event()
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def release(self) -> None:
        self.released.set()

    def __enter__(self) -> FakeBatchAPI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- the server's logic (called under the lock) ---------------------------------------
    def _new_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids)}"

    def _create_batch(self, request: dict[str, Any]) -> dict[str, Any]:
        lines = [json.loads(x) for x in self.files[request["input_file_id"]].splitlines() if x]
        self.inputs.append(lines)
        batch = {
            "id": self._new_id("batch"),
            "object": "batch",
            "endpoint": request["endpoint"],
            "input_file_id": request["input_file_id"],
            "completion_window": request["completion_window"],
            "created_at": 0,
            "status": "validating",
            "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
            "_outcome": self.script.popleft() if self.script else self.default,
            "_lines": lines,
            "_polls": 0,
        }
        self.batches[batch["id"]] = batch
        return batch

    def _advance(self, batch: dict[str, Any]) -> None:
        batch["_polls"] += 1
        if batch["status"] not in ("validating", "in_progress"):
            return
        if batch["_polls"] == 1:
            return
        held = batch["_outcome"] == "hold" and not self.released.is_set()
        if batch["_polls"] == 2 or held:
            batch["status"] = "in_progress"
            return
        self._finish(batch)

    def _finish(self, batch: dict[str, Any]) -> None:
        outcome, lines = batch["_outcome"], batch["_lines"]
        out, err = [], []
        for n, line in enumerate(lines):
            cid = line["custom_id"]
            row = {"id": f"req-{n}", "custom_id": cid, "response": None, "error": None}
            if outcome == "partial" and n == 0:
                row["response"] = {"status_code": 500, "body": {"error": {"message": "boom"}}}
                out.append(row)
            elif outcome == "partial" and n == 1:
                row["error"] = {"code": "server_error", "message": "lost"}
                err.append(row)
            elif outcome == "refuse" and n == 0:
                body = {"error": {"message": "Invalid 'top_logprobs'", "type": "invalid"}}
                row["response"] = {"status_code": 400, "body": body}
                out.append(row)
            elif outcome == "expired" and n >= len(lines) // 2:
                row["error"] = {"code": "batch_expired", "message": "not run in time"}
                err.append(row)
            else:
                row["response"] = {"status_code": 200, "body": completion()}
                out.append(row)
        batch["status"] = TERMINAL.get(outcome, outcome)
        ok = sum(1 for r in out if r["response"]["status_code"] == 200)
        batch["request_counts"] = {"total": len(lines), "completed": ok, "failed": len(lines) - ok}
        for key, rows in (("output_file_id", out), ("error_file_id", err)):
            if rows:
                file_id = self._new_id("file")
                self.files[file_id] = "".join(json.dumps(r) + "\n" for r in rows).encode()
                batch[key] = file_id

    @staticmethod
    def public(batch: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in batch.items() if not k.startswith("_")}

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length", 0)))

            def do_POST(self) -> None:
                raw = self._body()
                with fake._lock:
                    fake.headers.append({k.title(): v for k, v in self.headers.items()})
                    if self.path == "/v1/files":
                        file_id = fake._new_id("file")
                        fake.files[file_id] = _multipart_file(self.headers["Content-Type"], raw)
                        return self._send(
                            200,
                            {
                                "id": file_id,
                                "object": "file",
                                "bytes": 0,
                                "created_at": 0,
                                "filename": "in.jsonl",
                                "purpose": "batch",
                                "status": "processed",
                            },
                        )
                    if self.path == "/v1/batches":
                        return self._send(200, fake.public(fake._create_batch(json.loads(raw))))
                return self._send(404, {"error": {"message": f"no route {self.path}"}})

            def do_GET(self) -> None:
                with fake._lock:
                    parts = self.path.strip("/").split("/")
                    if parts[:2] == ["v1", "batches"] and parts[2] in fake.batches:
                        fake.polls += 1
                        batch = fake.batches[parts[2]]
                        fake._advance(batch)
                        return self._send(200, fake.public(batch))
                    if parts[:2] == ["v1", "files"] and parts[-1] == "content":
                        return self._raw(200, fake.files[parts[2]], "application/jsonl")
                return self._send(404, {"error": {"message": f"no route {self.path}"}})

            def _send(self, code: int, data: dict) -> None:
                self._raw(code, json.dumps(data).encode(), "application/json")

            def _raw(self, code: int, raw: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        return Handler


def _multipart_file(content_type: str, raw: bytes) -> bytes:
    """The ``file`` part of a multipart/form-data body."""
    message = BytesParser(policy=email_policy).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + raw
    )
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "file":
            return part.get_payload(decode=True)
    raise ValueError("no file part in the upload")
