"""End to end: the real ``distjudge eval`` CLI on the embedded SmolLM2 for every task, and the q
it reports checked against log-likelihoods computed directly with transformers."""

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

from distjudge_eval.embedded import EMBEDDED_GGUF, embedded_model_dir

pytestmark = pytest.mark.slow
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


@pytest.fixture(scope="module")
def data_with_mnli(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """The real data plus an MNLI-format file built from SNLI rows (MNLI is not shipped here)."""
    root = tmp_path_factory.mktemp("data")
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
        for metric in (
            "kl",
            "acc",
            "js",
            "brier",
            "ece",
            "entropy_gap",
            "kl_worst_0.25",
            "kl_exp_0.25",
        ):
            assert math.isfinite(results[task][f"{metric},none"]), (task, metric)
    return samples


@pytest.fixture(scope="module")
def direct_model():
    """The independent reference: transformers reading the GGUF file itself (the CLI loads the
    converted copy in distjudge's cache)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = embedded_model_dir()
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=EMBEDDED_GGUF)
    model = AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=EMBEDDED_GGUF, dtype=torch.float32
    )
    return tok, model.eval()


def test_the_cached_copy_is_the_gguf_model_bit_for_bit(direct_model) -> None:
    """What every run loads (distjudge_eval.embedded's converted folder) equals what
    transformers reads from the GGUF file: every weight, and the tokens of a chat prompt."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from distjudge_eval.embedded import embedded_weights

    folder, gguf = embedded_weights()
    assert gguf is None and (folder / "model.safetensors").is_file()
    tok, model = direct_model
    copy = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    copy_tok = AutoTokenizer.from_pretrained(folder)
    reference = model.state_dict()
    assert copy.state_dict().keys() == reference.keys()
    for name, tensor in copy.state_dict().items():
        assert torch.equal(tensor, reference[name]), name
    chat = [{"role": "user", "content": "Premise: a dog runs. Hypothesis: an animal moves."}]
    for t in (tok, copy_tok):
        assert t.apply_chat_template(chat, tokenize=False) == tok.apply_chat_template(
            chat, tokenize=False
        )
    text = tok.apply_chat_template(chat, tokenize=False) + "entailment ünïcode 12.5"
    assert copy_tok(text).input_ids == tok(text).input_ids


def direct_loglik(tok, model, context: str, continuation: str) -> float:
    """log P(continuation | context), tokenising the two parts separately, one forward pass."""
    import torch

    ctx = tok(context).input_ids
    cont = tok(continuation, add_special_tokens=False).input_ids
    ids = torch.tensor([ctx + cont])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(ids).logits[0].double(), dim=-1)
    positions = range(len(ctx) - 1, len(ctx) + len(cont) - 1)
    return float(sum(logprobs[pos, t] for pos, t in zip(positions, cont)))


def check_q_against_transformers(samples: dict[str, list[dict]], tok, model) -> None:
    for task, rows in samples.items():
        if task not in ALL_TASKS:
            continue
        assert len(rows) == 2, task
        row = rows[0]
        args = [row["arguments"][f"gen_args_{i}"] for i in range(len(row["arguments"]))]
        lls = np.array([direct_loglik(tok, model, a["arg_0"], a["arg_1"]) for a in args])
        q_direct = np.exp(lls - np.logaddexp.reduce(lls))
        np.testing.assert_allclose(row["ece"]["q"], q_direct, atol=1e-4, err_msg=task)
        assert row["kl"] == pytest.approx(scipy_entropy(row["doc"]["p"], q_direct), abs=1e-3)


@pytest.fixture(scope="module")
def stock_runs(tmp_path_factory: pytest.TempPathFactory, data_with_mnli: Path) -> dict:
    """Stock ``hf`` on every task, verbalized ones included, plain and with the chat template:
    two CLI runs that the tests below share. Batch size 1: a padded batch could flip a greedy
    token against the unpadded transformers reference."""
    out = tmp_path_factory.mktemp("stock")
    tasks = ALL_TASKS + VERBAL_TASKS
    chat = ["--apply_chat_template"]
    return {
        "plain": run_cli(out / "plain", data_with_mnli, tasks, "--model", "hf", batch_size="1"),
        "chat": run_cli(
            out / "chat", data_with_mnli, tasks, "--model", "hf", *chat, batch_size="1"
        ),
    }


CHAT_TASKS = ALL_TASKS
FIRST_TOKEN_TASKS = ["distjudge_snli", "distjudge_mtbench"]


def test_every_task_runs_and_q_matches_transformers(stock_runs: dict, direct_model) -> None:
    check_q_against_transformers(stock_runs["plain"], *direct_model)


def test_chat_template_prompts_run_and_match(stock_runs: dict, direct_model) -> None:
    first = stock_runs["chat"]["distjudge_snli"][0]["arguments"]["gen_args_0"]
    assert "<|im_start|>assistant" in first["arg_0"] and first["arg_1"] == "entailment"
    check_q_against_transformers(stock_runs["chat"], *direct_model)


def per_label_logliks(samples: dict[str, list[dict]]) -> dict[tuple[str, int, int], float]:
    return {
        (task, row["doc_id"], k): float(resp[0])
        for task, rows in samples.items()
        if task in ALL_TASKS
        for row in rows
        for k, resp in enumerate(row["filtered_resps"])
    }


@pytest.mark.parametrize("variant", ["plain", "chat"])
def test_hf_judge_full_mode_equals_stock_hf(
    variant: str, stock_runs: dict, tmp_path: Path, data_with_mnli: Path
) -> None:
    tasks = ALL_TASKS if variant == "plain" else CHAT_TASKS
    extra = ["--model", "hf-judge"] + (["--apply_chat_template"] if variant == "chat" else [])
    judge = per_label_logliks(run_cli(tmp_path, data_with_mnli, tasks, *extra))
    stock = per_label_logliks(stock_runs[variant])
    assert judge.keys() == stock.keys() and len(judge) >= 2 * 3 * len(tasks)
    worst = max(abs(judge[key] - stock[key]) for key in judge)
    assert worst < 1e-4, worst


def test_hf_judge_first_token_mode_matches_transformers(
    tmp_path: Path, data_with_mnli: Path, direct_model
) -> None:
    import torch

    from distjudge_eval.labels import NLI, PAIRWISE
    from distjudge_eval.readout import surface_variants

    tok, model = direct_model
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


def _embedded_args(extra: str) -> str:
    from distjudge_eval.embedded import embedded_model_args

    return f"{embedded_model_args()},{extra}"


@pytest.mark.parametrize("variant", ["plain", "chat"])
def test_verbalized_tasks_with_stock_hf_match_transformers_greedy(
    stock_runs: dict, direct_model, variant: str
) -> None:
    """Stock `hf` generation on the verbalized tasks: each reply equals transformers' greedy
    continuation of the logged prompt (cut at the task's stops) and is scored as parsed."""
    import torch

    from distjudge_eval.labels import NLI
    from distjudge_eval.verbalized import verbal_q

    tok, model = direct_model
    run = stock_runs[variant]
    assert "position bias: distjudge_mtbench_verbalized: 2 items in both orders" in run["stdout"]
    for task in VERBAL_TASKS:
        for row in run[task]:
            args = row["arguments"]["gen_args_0"]
            prompt, gen_kwargs = args["arg_0"], args["arg_1"]
            if variant == "chat":
                assert prompt.rstrip().endswith("<prob>") or task.startswith("distjudge_snli")
                assert "<|im_start|>assistant" in prompt
            ids = torch.tensor([tok(prompt, add_special_tokens=False).input_ids])
            with torch.no_grad():
                out = model.generate(
                    ids, max_new_tokens=gen_kwargs["max_gen_toks"], do_sample=False
                )
            local = tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
            for stop in gen_kwargs["until"]:
                local = local.split(stop, 1)[0]
            reply = row["resps"][0][0]
            assert reply == local, (task, reply, local)
            label_set = NLI if task.startswith("distjudge_snli") else None
            q, parsed = verbal_q(reply, label_set)
            assert row["ece"]["q"] == pytest.approx(q)
            assert row["parse_fail"] == (0.0 if parsed else 1.0)
