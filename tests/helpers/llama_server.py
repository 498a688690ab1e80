"""Start llama-cpp-python's OpenAI-compatible server on the embedded GGUF, on loopback.

A test helper (so it lives in tests/, not in the package), also used by ``python
benchmarks/bench.py api``: a real HTTP server that returns chat ``top_logprobs``, with the same
weights the local backends load.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import requests

from distjudge_eval.embedded import EMBEDDED_GGUF, embedded_model_dir


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def embedded_llama_server(n_ctx: int = 4096, startup_s: float = 120.0) -> Iterator[str]:
    """Yields the server's base URL (``http://127.0.0.1:<port>/v1``); stops it on exit."""
    port = _free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model"]
    cmd += [str(embedded_model_dir() / EMBEDDED_GGUF), "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--n_ctx", str(n_ctx), "--logits_all", "true", "--verbose", "false"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + startup_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited: {proc.stderr.read()[-2000:]}")
            try:
                if requests.get(f"{base}/models", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"llama_cpp.server did not answer within {startup_s:.0f} s")
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
