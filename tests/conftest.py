"""Shared fixtures: the real data dir and the embedded model location."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _share_the_cores() -> None:
    """One torch thread pool per core, not per process.

    Under pytest-xdist every worker, and every CLI subprocess it starts, would size its thread
    pool to all cores; two workers on 2 cores then oversubscribe them and OpenMP's spinning
    threads halve the speed of both (measured: two concurrent `distjudge eval` runs took 119 s
    and 121 s with the default pools, 56 s and 60 s with one thread each: `distjudge eval --tasks`
    with the 7 log-likelihood tasks of tests/helpers/e2e_support.py, `--limit 2 --batch_size 4
    --model hf-judge`, twice in parallel, idle 2-core machine). The limit is set
    before torch is imported and is inherited by subprocesses; a value the user set wins.
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers <= 1:
        return
    threads = max(1, (os.cpu_count() or 1) // workers)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, str(threads))
    if "torch" in sys.modules:  # imported before this file (a plugin): set its pool directly
        sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


_share_the_cores()


def _no_hub() -> None:
    """No test may reach the Hugging Face Hub: this machine has no internet, and a library that
    tries anyway (lm-eval's ``dummy`` model loads a ``gpt2`` tokenizer for its run record) waits
    through the hub client's retries, 45 s of sleep per run, before it gives up. Offline, it
    gives up at once. Inherited by every subprocess; a value the user set wins."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


_no_hub()


def _data_dir() -> Path:
    env = os.environ.get("DISTJUDGE_DATA_DIR")
    return Path(env).resolve() if env else REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = _data_dir()
    if not path.is_dir():
        pytest.fail(f"real data dir not found at {path}: set DISTJUDGE_DATA_DIR")
    return path


@pytest.fixture(scope="session")
def embedded_folder() -> Path:
    """The embedded judge as a plain transformers folder: distjudge's converted copy of its GGUF
    file (made on first use, ~1 s to load after that; test_e2e_stock checks it equals the
    GGUF model)."""
    from distjudge_eval.embedded import embedded_weights

    folder, gguf = embedded_weights()
    if gguf is not None:
        pytest.fail("the converted copy of the embedded model could not be written")
    return folder


@pytest.fixture(scope="session")
def embedded_tokenizer(embedded_folder: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(embedded_folder)
