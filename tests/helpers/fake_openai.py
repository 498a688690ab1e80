"""A local OpenAI-compatible chat server that injects faults, for openai-judge tests."""

from __future__ import annotations

import json
import math
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# Top candidates of the fake judge's first token: " Ent"/"neutral"/"contra" map to the NLI
# labels, "n" is ambiguous (neutral, or "no" = contradiction), "The" maps to nothing.
TOP = [("neutral", 0.5), (" Ent", 0.2), ("contra", 0.1), ("n", 0.05), ("The", 0.05)]


def completion(top: list[tuple[str, float]] = TOP) -> dict[str, Any]:
    entries = [{"token": t, "logprob": math.log(p), "bytes": None} for t, p in top]
    return {
        "id": "fake",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": top[0][0]},
                "logprobs": {"content": [{**entries[0], "top_logprobs": entries}]},
                "finish_reason": "length",
            }
        ],
        "usage": {"prompt_tokens": 100, "completion_tokens": 1, "total_tokens": 101},
    }


# An over-long prompt, as OpenAI, vLLM and llama-cpp-python word it.
CONTEXT_OVERFLOW = {
    "error": {
        "message": "This model's maximum context length is 2048 tokens. However, you requested "
        "3001 tokens (3000 in the messages, 1 in the completion). Please reduce the length of "
        "the messages or completion.",
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
}


class FakeOpenAI:
    """Serves scripted behaviours in order, then ``default`` ("ok") forever. Records every
    request. Behaviours: "ok", "429", "500", "503", "slow", "truncated", "nologprobs",
    "400ctx" (context overflow), "400echo" (a 400 whose body echoes the request headers, as
    some proxies do), "401"."""

    def __init__(
        self,
        script: list[str] | None = None,
        delay: float = 0.0,
        reply: str = "0.73</prob> ok",
        default: str = "ok",
        hold_after: int | None = None,
    ) -> None:
        self.script: deque[str] = deque(script or [])
        self.default = default
        self.reply = reply  # the text of generation requests (no `logprobs` in the body)
        self.delay = delay
        # requests after the first ``hold_after`` wait for ``release`` (a test's signal lands
        # while they are in flight, however slowly the test itself is scheduled)
        self.hold_after = hold_after
        self.release = threading.Event()
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def seen(self) -> int:
        """Requests received so far."""
        with self._lock:
            return len(self.bodies)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                with fake._lock:
                    fake.bodies.append(body)
                    # header names as HTTP treats them, case-insensitive (clients send either case)
                    fake.headers.append({k.title(): v for k, v in self.headers.items()})
                    action = fake.script.popleft() if fake.script else fake.default
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                    held = fake.hold_after is not None and len(fake.bodies) > fake.hold_after
                try:
                    if held:
                        fake.release.wait(60)
                    time.sleep(fake.delay)
                    self._respond(action, body)
                finally:
                    with fake._lock:
                        fake.in_flight -= 1

            def _respond(self, action: str, body: dict) -> None:
                if action == "429":
                    return self._send(429, {"error": "rate"}, {"Retry-After": "1"})
                if action in ("500", "503"):
                    return self._send(int(action), {"error": "boom"})
                if action == "400ctx":
                    return self._send(400, CONTEXT_OVERFLOW)
                if action == "400echo":
                    # Authorization first, so that even a short excerpt of the body holds it
                    first = sorted(
                        self.headers.items(), key=lambda kv: kv[0].lower() != "authorization"
                    )
                    message = f"invalid request; headers received: {dict(first)}"
                    return self._send(400, {"error": {"message": message, "type": "bad"}})
                if action == "401":
                    return self._send(401, {"error": {"message": "Incorrect API key provided"}})
                if action == "slow":
                    time.sleep(1.5)
                if action == "truncated":
                    raw = json.dumps(completion()).encode()[:40]
                    return self._raw(200, raw)
                if action == "nologprobs":
                    data = completion()
                    data["choices"][0]["logprobs"] = None
                    return self._send(200, data)
                if not body.get("logprobs"):
                    data = completion()
                    data["choices"][0]["message"]["content"] = fake.reply
                    data["choices"][0]["logprobs"] = None
                    return self._send(200, data)
                return self._send(200, completion())

            def _send(self, code: int, data: dict, headers: dict | None = None) -> None:
                self._raw(code, json.dumps(data).encode(), headers)

            def _raw(self, code: int, raw: bytes, headers: dict | None = None) -> None:
                try:
                    self.send_response(code)
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

        return Handler
