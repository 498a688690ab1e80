"""Shared by the end-to-end files: the task lists, a data dir with an MNLI file, one real
``distjudge eval`` run, and log-likelihoods computed directly with transformers (the
independent reference the CLI's q is checked against)."""

from __future__ import annotations

import gzip
import inspect
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import entropy as scipy_entropy

ALL_TASKS = [
    "distjudge_snli",
    "distjudge_mnli",
    "distjudge_mtbench",
    "distjudge_summeval_coherence",
    "distjudge_summeval_consistency",
    "distjudge_summeval_fluency",
    "distjudge_summeval_relevance",
]
VERBAL_TASKS = [
    "distjudge_mtbench_verbalized",
    "distjudge_mtbench_verbalized_swapped",
    "distjudge_snli_verbalized",
]
FINITE_METRICS = ("kl", "acc", "js", "brier", "ece", "entropy_gap", "kl_worst_0.25", "kl_exp_0.25")


def data_with_mnli(root: Path, data_dir: Path) -> Path:
    """The real data plus an MNLI-format file built from SNLI rows (MNLI is not shipped here)."""
    for name in ("snli", "summeval", "mt_bench"):
        (root / name).symlink_to(data_dir / name)
    (root / "mnli").mkdir()
    with gzip.open(data_dir / "snli/snli_1.0_dev.jsonl.gz", "rt") as src:
        rows = [json.loads(next(src)) for _ in range(60)]
    with (root / "mnli/multinli_1.0_dev_matched.jsonl").open("w") as out:
        for row in rows:
            out.write(json.dumps({**row, "promptID": row["captionID"], "genre": "snli"}) + "\n")
    return root


def run_cli(
    out: Path, data: Path, tasks: list[str], *extra: str, batch_size: str = "4", limit: int = 1
) -> dict[str, list[dict]]:
    """One real ``distjudge eval`` run; the samples per task (and its stdout under "stdout").

    One item per task by default: the coverage is per task (its prompt, labels and metrics);
    SummEval's and MT-Bench's long prompts make each further item cost seconds per run."""
    cmd = [sys.executable, "-m", "distjudge_eval.cli", "eval", "--tasks", ",".join(tasks)]
    cmd += ["--limit", str(limit), "--batch_size", batch_size, "--output_path", str(out)]
    cmd += ["--data_dir", str(data)]
    proc = subprocess.run([*cmd, *extra], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "distjudge summary" in proc.stdout
    samples: dict[str, list[dict]] = {}
    for task in tasks:
        (path,) = out.glob(f"**/samples_{task}_2*.jsonl")
        samples[task] = [json.loads(line) for line in path.open()]
        assert len(samples[task]) == limit, (task, len(samples[task]))
    (results_file,) = out.glob("**/results_*.json")
    results = json.loads(results_file.read_text())["results"]
    samples["stdout"] = proc.stdout  # type: ignore[assignment]
    for task in tasks:
        if task in VERBAL_TASKS:
            continue
        for metric in FINITE_METRICS:
            assert math.isfinite(results[task][f"{metric},none"]), (task, metric)
    return samples


def _lm_eval_split(tok, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """lm-eval's tokenisation rule: whitespace at the end of the context moves to the
    continuation (a chat prompt's final "\n" is scored as part of the answer), the pair is
    tokenised whole and split at the context's length."""
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    whole = tok(context + continuation).input_ids
    n_ctx = len(tok(context).input_ids)
    return whole[:n_ctx], whole[n_ctx:]


def _continuation_logprob(model, hidden, cont: list[int]) -> float:
    """Sum of the continuation's log-probabilities from the hidden states that predict it; the
    softmax in float64."""
    import torch

    with torch.no_grad():  # a reference score, not a training step
        logprobs = torch.log_softmax(model.lm_head(hidden).double(), dim=-1)
    return float(logprobs[torch.arange(len(cont)), torch.tensor(cont)].sum())


def direct_loglik(tok, model, context: str, continuation: str) -> float:
    """log P(continuation | context) by one plain forward pass over the whole sequence, split
    with lm-eval's tokenisation rule; lm_head only at the continuation's positions."""
    import torch

    ctx, cont = _lm_eval_split(tok, context, continuation)
    whole = ctx + cont
    positions = torch.arange(len(ctx) - 1, len(whole) - 1)
    with torch.no_grad():
        hidden = model.model(torch.tensor([whole])).last_hidden_state[0, positions]
    return _continuation_logprob(model, hidden, cont)


def direct_logliks(
    tok, model, context: str, continuations: list[str], cross_check: bool = False
) -> list[float]:
    """``direct_loglik`` for every label of one item, with the context's forward pass done once:
    transformers' own key-value cache of the context serves each continuation (on long
    SummEval and MT-Bench prompts a pass per label cost up to 5x as much). With ``cross_check``
    the first label is also scored by a plain forward pass and must agree to 1e-5, so the cache
    cannot hide an error."""
    import torch

    splits = [_lm_eval_split(tok, context, c) for c in continuations]
    ctx = splits[0][0]
    if any(c != ctx for c, _ in splits):  # a label merged with the context's last token
        return [direct_loglik(tok, model, context, c) for c in continuations]
    out = []
    # transformers 5 renamed past_key_values to cache (the old name goes in 5.40): use what it takes
    key = (
        "cache"
        if "cache" in inspect.signature(model.model.forward).parameters
        else "past_key_values"
    )
    with torch.no_grad():
        first = model.model(torch.tensor([ctx]), use_cache=True)
        cache, last = first[key], first.last_hidden_state[0, -1:]
        for _, cont in splits:
            hidden = last
            if len(cont) > 1:
                rest = model.model(torch.tensor([cont[:-1]]), **{key: cache}, use_cache=True)
                hidden = torch.cat([last, rest.last_hidden_state[0]])
                cache.crop(-(len(cont) - 1))  # back to the context alone
            out.append(_continuation_logprob(model, hidden, cont))
    if cross_check:
        plain = direct_loglik(tok, model, context, continuations[0])
        assert abs(plain - out[0]) < 1e-5, (plain, out[0])
    return out


def request_args(row: dict) -> list[dict]:
    return [row["arguments"][f"gen_args_{i}"] for i in range(len(row["arguments"]))]


def check_q_against_transformers(samples: dict[str, list[dict]], tok, model) -> None:
    """Every item of every log-likelihood task: each label's log-likelihood, q and KL as
    transformers computes them (the key-value cache cross-checked on the first item)."""
    first = True
    for task, rows in samples.items():
        if task not in ALL_TASKS:
            continue
        assert rows, task
        for row in rows:
            args = request_args(row)
            assert len({a["arg_0"] for a in args}) == 1, task  # one context, a label each
            labels = [a["arg_1"] for a in args]
            lls = np.array(direct_logliks(tok, model, args[0]["arg_0"], labels, cross_check=first))
            first = False
            logged = [float(resp[0]) for resp in row["filtered_resps"]]
            np.testing.assert_allclose(logged, lls, atol=1e-4, err_msg=task)
            q_direct = np.exp(lls - np.logaddexp.reduce(lls))
            np.testing.assert_allclose(row["ece"]["q"], q_direct, atol=1e-4, err_msg=task)
            kl = scipy_entropy(row["doc"]["p"], q_direct)
            assert row["kl"] == pytest.approx(kl, abs=1e-3), task
