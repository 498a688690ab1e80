"""openai-judge end to end against a real OpenAI-compatible server: llama-cpp-python serving the
embedded SmolLM2 GGUF on 127.0.0.1, compared with the local first-token readout of the same
model (hf-judge, readout=first_token, same chat template)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from distjudge_eval.embedded import embedded_model_args
from distjudge_eval.llama_server import embedded_llama_server

pytestmark = pytest.mark.slow
TASKS = ["distjudge_snli", "distjudge_mtbench"]
# Same weights on both sides (transformers dequantises the Q4_1 GGUF exactly), but llama.cpp
# multiplies Q4_1 weights with 8-bit-quantised activations, and the API sees only the top 20
# tokens: q agrees to a few hundredths, not to float precision. Measured: see the test's print.
Q_TOLERANCE = 0.05


def run(out: Path, data_dir: Path, model: str, model_args: str, *extra: str) -> dict:
    cmd = [sys.executable, "-m", "distjudge_eval.cli", "eval", "--model", model, "--model_args"]
    cmd += [model_args, "--tasks", ",".join(TASKS), "--limit", "4", *extra]
    cmd += ["--output_path", str(out), "--data_dir", str(data_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    samples = {}
    for task in TASKS:
        (path,) = out.glob(f"**/samples_{task}_*.jsonl")
        samples[task] = {r["doc_id"]: r for r in map(json.loads, path.open())}
    return samples


def test_api_q_agrees_with_local_first_token_readout(tmp_path: Path, data_dir: Path) -> None:
    with embedded_llama_server() as base_url:
        api = run(tmp_path / "api", data_dir, "openai-judge", f"model=smollm2,base_url={base_url}")
    # The server wraps the prompt in the GGUF's chat template; locally lm-eval applies the same
    # template (read from the same GGUF) when asked to.
    local_args = embedded_model_args() + ",readout=first_token"
    local = run(tmp_path / "local", data_dir, "hf-judge", local_args, "--apply_chat_template")
    worst = 0.0
    for task in TASKS:
        assert api[task].keys() == local[task].keys()
        for doc_id, row in api[task].items():
            # same chat-templated prompt on both sides
            assert (
                row["arguments"]["gen_args_0"]["arg_0"]
                == (local[task][doc_id]["arguments"]["gen_args_0"]["arg_0"])
            )
            diff = np.abs(np.array(row["ece"]["q"]) - np.array(local[task][doc_id]["ece"]["q"]))
            worst = max(worst, float(diff.max()))
            assert row["label_mass"] > 0.5, (task, doc_id, row["label_mass"])
    print(f"max |q_api - q_local| over {sum(len(v) for v in api.values())} items: {worst:.4f}")
    assert worst < Q_TOLERANCE
