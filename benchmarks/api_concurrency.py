"""How openai-judge's throughput scales with ``num_concurrent`` when the server overlaps requests.

A local threaded server (in its own process) answers every chat request after a fixed latency
(default 50 ms), each request on its own thread, as a batching API server does. openai-judge
scores N synthetic NLI items at each concurrency; items/s is the median of R repeats, and the
ratio is to ``num_concurrent=1``. Ideal scaling is a ratio equal to the concurrency; the
shortfall is the client's per-request cost (the ``openai`` client, JSON, the readout) on this
machine's CPUs.

    python benchmarks/api_concurrency.py --items 64 --latency_ms 50 --repeats 3

(``benchmarks/bench.py api`` measures the embedded llama.cpp server instead, which runs one
request at a time, so it shows no scaling by construction.)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import multiprocessing
import socket
import statistics
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from distjudge_eval.models.openai_judge import OpenAIJudgeLM

TOP = [("neutral", 0.5), (" Ent", 0.2), ("contra", 0.1), ("The", 0.05)]
LABELS = [" entailment", " neutral", " contradiction"]


def _completion() -> bytes:
    entries = [{"token": t, "logprob": math.log(p), "bytes": None} for t, p in TOP]
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": TOP[0][0]},
        "logprobs": {"content": [{**entries[0], "top_logprobs": entries}]},
        "finish_reason": "length",
    }
    usage = {"prompt_tokens": 100, "completion_tokens": 1, "total_tokens": 101}
    data = {"id": "x", "object": "chat.completion", "choices": [choice], "usage": usage}
    return json.dumps(data).encode()


class LatencyServer:
    """Answers every POST after ``latency`` seconds; requests overlap (one thread each)."""

    def __init__(self, latency: float) -> None:
        body = _completion()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: the client reuses connections

            def log_message(self, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                # headers and body leave in two writes: without this, Nagle + delayed ACK add
                # ~40 ms to every reply on a kept-alive connection, a server artefact
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                time.sleep(latency)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True


def _serve(latency: float, port: Any) -> None:
    server = LatencyServer(latency).server
    port.put(server.server_address[1])
    server.serve_forever()


class ServerProcess:
    """The server in its own process, so its threads do not share the client's GIL."""

    def __init__(self, latency: float) -> None:
        self.port: Any = multiprocessing.Queue()
        self.process = multiprocessing.Process(target=_serve, args=(latency, self.port))

    def __enter__(self) -> str:
        self.process.start()
        return f"http://127.0.0.1:{self.port.get(timeout=60)}/v1"

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.join()


@dataclass
class _Req:
    args: tuple[str, str]
    doc_id: int
    task_name: str = "bench"


def items_per_second(base_url: str, n_items: int, concurrency: int) -> float:
    reqs = [_Req((f"premise {d}\nAnswer:", c), d) for d in range(n_items) for c in LABELS]
    lm = OpenAIJudgeLM(model="bench", base_url=base_url, num_concurrent=concurrency)
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the per-run usage line
        lm.loglikelihood(reqs, disable_tqdm=True)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - start
    if lm.requests_sent != n_items:
        raise RuntimeError(f"expected {n_items} requests, sent {lm.requests_sent}")
    return n_items / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=64)
    parser.add_argument("--latency_ms", type=float, default=50.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 8])
    ns = parser.parse_args(argv)
    rates: dict[int, float] = {}
    with ServerProcess(ns.latency_ms / 1000) as base_url:
        items_per_second(base_url, 4, 1)  # warm-up: imports, first connection
        for c in ns.concurrency:
            runs = [items_per_second(base_url, ns.items, c) for _ in range(ns.repeats)]
            rates[c] = statistics.median(runs)
    ideal = 1000 / ns.latency_ms
    print(
        f"openai-judge, {ns.items} items, server latency {ns.latency_ms:g} ms (overlapping), "
        f"median of {ns.repeats}"
    )
    print("| num_concurrent | items/s | ratio to 1 | latency-bound items/s |")
    print("|---:|---:|---:|---:|")
    base = rates[ns.concurrency[0]]
    for c, rate in rates.items():
        print(f"| {c} | {rate:.1f} | {rate / base:.2f} | {c * ideal:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
