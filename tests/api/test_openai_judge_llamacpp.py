"""openai-judge end to end against a real OpenAI-compatible server: llama-cpp-python serving the
embedded SmolLM2 GGUF on 127.0.0.1, compared with the same model run locally by transformers.

Tolerances. Both sides use the same Q4_1 weights (transformers dequantises them exactly), but
llama.cpp multiplies them with 8-bit-quantised activations, so next-token probabilities differ a
little (measured up to 0.02 on these prompts). SmolLM2 puts only 5–10% of its first-token mass on
label tokens here (``label_mass``), so q, renormalised over that small mass, moves up to ~0.05
(measured 0.050 worst on 8 items). We compare like with like: the local top-20 tokens mapped
to labels by the same rules; the full-vocabulary first-token readout differs by design (labels
outside the top 20 get floors) and is not asserted on.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
import torch
from llama_server import embedded_llama_server

from distjudge_eval.embedded import EMBEDDED_GGUF, embedded_model_dir
from distjudge_eval.models.openai_judge import LabelMatcher, label_logprobs
from distjudge_eval.verbalized import verbal_q

pytestmark = pytest.mark.slow
TASKS = ["distjudge_snli", "distjudge_mtbench"]
TOKEN_PROB_TOLERANCE = 0.03
Q_TOLERANCE = 0.08


@pytest.fixture(scope="module")
def local_model():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = embedded_model_dir()
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=EMBEDDED_GGUF)
    model = AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=EMBEDDED_GGUF, dtype=torch.float32
    )
    return tok, model.eval()


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    """One llama.cpp server for this file's tests (each start loads the model again)."""
    with embedded_llama_server() as base_url:
        yield base_url


def local_top20(tok, model, prompt: str) -> list[dict]:
    chat = [{"role": "user", "content": prompt}]
    ids = tok.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt")
    ids = ids if isinstance(ids, torch.Tensor) else ids["input_ids"]
    with torch.no_grad():
        logprobs = torch.log_softmax(model(ids).logits[0, -1].double(), -1)
    values, idx = logprobs.topk(20)
    return [{"token": tok.decode([int(i)]), "logprob": float(v)} for v, i in zip(values, idx)]


def test_api_judge_on_a_real_server_matches_the_local_model(
    tmp_path: Path, data_dir: Path, local_model, server_url: str
) -> None:
    tok, model = local_model
    base_url = server_url
    cmd = [sys.executable, "-m", "distjudge_eval.cli", "eval", "--model", "openai-judge"]
    cmd += ["--model_args", f"model=smollm2,base_url={base_url},num_concurrent=2"]
    cmd += ["--tasks", ",".join(TASKS), "--limit", "2", "--output_path", str(tmp_path)]
    cmd += ["--data_dir", str(data_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "openai-judge: 4 HTTP requests (0 retries)" in proc.stdout

    worst_token, worst_q = 0.0, 0.0
    for task in TASKS:
        (path,) = tmp_path.glob(f"**/samples_{task}_*.jsonl")
        for row in map(json.loads, path.open()):
            args = [row["arguments"][f"gen_args_{i}"] for i in range(3)]
            prompt, labels = args[0]["arg_0"], [a["arg_1"] for a in args]
            local = local_top20(tok, model, prompt)
            body = {"model": "smollm2", "messages": [{"role": "user", "content": prompt}]}
            body |= {"max_tokens": 1, "temperature": 0, "logprobs": True, "top_logprobs": 20}
            data = requests.post(f"{base_url}/chat/completions", json=body, timeout=120)
            api = data.json()["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
            api_p = {e["token"]: math.exp(e["logprob"]) for e in api}
            local_p = {e["token"]: math.exp(e["logprob"]) for e in local}
            assert api[0]["token"] == local[0]["token"]
            shared = api_p.keys() & local_p.keys()
            assert len(shared) >= 15
            worst_token = max(worst_token, max(abs(api_p[t] - local_p[t]) for t in shared))
            q_local = np.exp(label_logprobs(local, LabelMatcher.for_labels(labels))[0])
            q_local /= q_local.sum()
            worst_q = max(worst_q, float(np.abs(np.array(row["ece"]["q"]) - q_local).max()))
            assert 0 < row["label_mass"] <= 1
    print(f"max token-probability gap {worst_token:.4f}, max q gap {worst_q:.4f}")
    assert worst_token < TOKEN_PROB_TOLERANCE
    assert worst_q < Q_TOLERANCE


def test_verbalized_generation_on_a_real_server_matches_local_greedy(
    tmp_path: Path, data_dir: Path, local_model, server_url: str
) -> None:
    """openai-judge generate_until against llama.cpp: the reply equals transformers' greedy
    continuation of the same chat prompt (cut at the task's stop sequences)."""
    tok, model = local_model
    task = "distjudge_mtbench_verbalized"
    base_url = server_url
    cmd = [sys.executable, "-m", "distjudge_eval.cli", "eval", "--model", "openai-judge"]
    cmd += ["--model_args", f"model=smollm2,base_url={base_url}"]
    cmd += ["--tasks", task, "--limit", "2", "--output_path", str(tmp_path)]
    cmd += ["--data_dir", str(data_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    (path,) = tmp_path.glob(f"**/samples_{task}_2*.jsonl")
    for row in map(json.loads, path.open()):
        prompt = row["arguments"]["gen_args_0"]["arg_0"]
        chat = [{"role": "user", "content": prompt}]
        ids = tok.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt")
        ids = ids if isinstance(ids, torch.Tensor) else ids["input_ids"]
        with torch.no_grad():
            out = model.generate(ids, max_new_tokens=8, do_sample=False)
        local = tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
        for stop in ("</prob>", "\n"):
            local = local.split(stop, 1)[0]
        print(f"api {row['resps'][0][0]!r} local {local!r}")
        assert row["resps"][0][0] == local
        # parse_fail is what the harness's parser says of the (identical) local reply
        assert row["parse_fail"] == (0.0 if verbal_q(local, None)[1] else 1.0)
