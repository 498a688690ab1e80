"""Shared by the end-to-end files: the task lists, a data dir with an MNLI file, one real
``distjudge eval`` run, and log-likelihoods computed directly with transformers (the
independent reference the CLI's q is checked against)."""

from __future__ import annotations

import gzip
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
    out: Path, data: Path, tasks: list[str], *extra: str, batch_size: str = "4"
) -> dict[str, list[dict]]:
    """One real ``distjudge eval`` run; the samples per task (and its stdout under "stdout")."""
    cmd = [sys.executable, "-m", "distjudge_eval.cli", "eval", "--tasks", ",".join(tasks)]
    cmd += ["--limit", "2", "--batch_size", batch_size, "--output_path", str(out)]
    cmd += ["--data_dir", str(data)]
    proc = subprocess.run([*cmd, *extra], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "distjudge summary" in proc.stdout
    samples: dict[str, list[dict]] = {}
    for task in tasks:
        (path,) = out.glob(f"**/samples_{task}_2*.jsonl")
        samples[task] = [json.loads(line) for line in path.open()]
    (results_file,) = out.glob("**/results_*.json")
    results = json.loads(results_file.read_text())["results"]
    samples["stdout"] = proc.stdout  # type: ignore[assignment]
    for task in tasks:
        if task in VERBAL_TASKS:
            continue
        for metric in FINITE_METRICS:
            assert math.isfinite(results[task][f"{metric},none"]), (task, metric)
    return samples


def direct_loglik(tok, model, context: str, continuation: str) -> float:
    """log P(continuation | context) by one plain forward pass, with lm-eval's tokenisation rule:
    whitespace at the end of the context moves to the continuation (a chat prompt's final "\n"
    is scored as part of the answer), the pair is tokenised whole and split at the context's
    length. The softmax is taken in float64, only at the continuation's positions."""
    import torch

    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    whole = tok(context + continuation).input_ids
    n_ctx = len(tok(context).input_ids)
    cont = whole[n_ctx:]
    positions = torch.arange(n_ctx - 1, len(whole) - 1)
    with torch.no_grad():
        hidden = model.model(torch.tensor([whole])).last_hidden_state[0, positions]
        logprobs = torch.log_softmax(model.lm_head(hidden).double(), dim=-1)
    return float(logprobs[torch.arange(len(cont)), torch.tensor(cont)].sum())


def request_args(row: dict) -> list[dict]:
    return [row["arguments"][f"gen_args_{i}"] for i in range(len(row["arguments"]))]


def check_q_against_transformers(samples: dict[str, list[dict]], tok, model) -> None:
    """The first item of every log-likelihood task: each label's log-likelihood, q and KL as
    transformers computes them."""
    for task, rows in samples.items():
        if task not in ALL_TASKS:
            continue
        assert len(rows) == 2, task
        row = rows[0]
        args = request_args(row)
        lls = np.array([direct_loglik(tok, model, a["arg_0"], a["arg_1"]) for a in args])
        logged = [float(resp[0]) for resp in row["filtered_resps"]]
        np.testing.assert_allclose(logged, lls, atol=1e-4, err_msg=task)
        q_direct = np.exp(lls - np.logaddexp.reduce(lls))
        np.testing.assert_allclose(row["ece"]["q"], q_direct, atol=1e-4, err_msg=task)
        assert row["kl"] == pytest.approx(scipy_entropy(row["doc"]["p"], q_direct), abs=1e-3)
