"""End to end with our backend: the real ``distjudge eval`` CLI with ``hf-judge`` on the embedded
SmolLM2, every label score of every item checked against log-likelihoods computed directly with
transformers (full readout, plain and chat-templated prompts), and the first-token readout
against transformers' next-token distribution."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from e2e_support import ALL_TASKS, check_q_against_transformers, request_args, run_cli

pytestmark = pytest.mark.slow
FIRST_TOKEN_TASKS = ["distjudge_snli", "distjudge_mtbench"]


@pytest.fixture(scope="module")
def reference(embedded_folder: Path, embedded_tokenizer):
    """transformers on distjudge's converted copy of the GGUF model (test_e2e_stock checks the
    copy equals the GGUF model weight for weight)."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(embedded_folder, dtype=torch.float32)
    return embedded_tokenizer, model.eval()


def _embedded_args(extra: str) -> str:
    from distjudge_eval.embedded import embedded_model_args

    return f"{embedded_model_args()},{extra}"


@pytest.mark.parametrize("variant", ["plain", "chat"])
def test_hf_judge_full_mode_equals_transformers_on_every_label(
    variant: str, tmp_path: Path, data_with_mnli: Path, reference
) -> None:
    """Every label's log-likelihood of every item of every task (the same check as stock
    hf's in test_e2e_stock). Plain: two items per task in one batch (hf-judge pads them and
    shares their prefix pass), so the second item checks the batching; chat: one item."""
    extra = ["--model", "hf-judge"] + (["--apply_chat_template"] if variant == "chat" else [])
    limit = 2 if variant == "plain" else 1
    samples = run_cli(tmp_path, data_with_mnli, ALL_TASKS, *extra, limit=limit)
    if variant == "chat":
        for task in ALL_TASKS:
            assert "<|im_start|>assistant" in request_args(samples[task][0])[0]["arg_0"], task
    check_q_against_transformers(samples, *reference)


def test_hf_judge_first_token_mode_matches_transformers(
    tmp_path: Path, data_with_mnli: Path, reference
) -> None:
    import torch

    from distjudge_eval.labels import NLI, PAIRWISE
    from distjudge_eval.readout import surface_variants

    tok, model = reference
    extra = ["--model", "hf-judge", "--model_args", _embedded_args("readout=first_token")]
    samples = run_cli(tmp_path, data_with_mnli, FIRST_TOKEN_TASKS, *extra)
    for task, label_set in (("distjudge_snli", NLI), ("distjudge_mtbench", PAIRWISE)):
        row = samples[task][0]
        context = row["arguments"]["gen_args_0"]["arg_0"]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([tok(context).input_ids])).logits[0, -1]
        logprobs = torch.log_softmax(logits.double(), -1)
        sets = []
        for label in label_set.labels:
            variants = surface_variants(label, label_set.synonyms.get(label, ()))
            sets.append({tok(v, add_special_tokens=False).input_ids[0] for v in variants})
        # A first token claimed by two labels ("[[" of "[[A]]" and "[[B]]") counts for neither.
        shared = {t for i, a in enumerate(sets) for b in sets[i + 1 :] for t in a & b}
        masses = [float(torch.logsumexp(logprobs[sorted(s - shared)], -1)) for s in sets]
        q = np.exp(np.array(masses) - np.logaddexp.reduce(masses))
        np.testing.assert_allclose(row["ece"]["q"], q, atol=1e-4, err_msg=task)
