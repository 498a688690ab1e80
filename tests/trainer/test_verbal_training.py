"""Verbalized-judge training: rewards are proper scoring rules, sparse labels are drawn and flipped
as documented, prompts equal the harness's, targets parse back to p, and SFT / GRPO run end to end
on CPU for a pairwise task (MT-Bench) and a label task (SNLI)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from distjudge_eval.errors import UserError
from distjudge_eval.labels import NLI
from distjudge_eval.verbalized import distribution_text, hundredths, parse_distribution, verbal_q
from distjudge_trainer.rewards import (
    brier_reward,
    cut_at_stops,
    log_reward,
    make_reward_fn,
    multiclass_brier_reward,
    multiclass_log_reward,
)
from distjudge_trainer.verbal_data import VerbalPrompt, sparse_dataset, sparse_label, sparse_vote


@pytest.mark.parametrize("rule", ["brier", "log"])
def test_rewards_are_proper(rule: str) -> None:
    """Brute force: for y ~ Bernoulli(pi) the expected reward peaks at x = pi on a fine grid."""
    grid = np.linspace(0.0, 1.0, 1001)
    for pi in (0.1, 0.3, 0.5, 0.85):
        reward = brier_reward if rule == "brier" else log_reward
        expected = [pi * reward(float(x), 1.0) + (1 - pi) * reward(float(x), 0.0) for x in grid]
        assert grid[int(np.argmax(expected))] == pytest.approx(pi, abs=1e-3)
    # an unparsable reply scores the worst value the rule can give
    assert brier_reward(None, 1.0) == 0.0 == min(brier_reward(x, 1.0) for x in grid)
    assert log_reward(None, 0.0) == pytest.approx(math.log(0.01))
    assert log_reward(None, 0.0) <= min(log_reward(float(x), 0.0) for x in grid)


def test_reward_fn_cuts_at_stops_and_parses_like_the_harness() -> None:
    fn = make_reward_fn("brier", ["</prob>", "\n"])
    completions = ["0.8</prob> junk", "0.8\n0.1", "B is better", "0.3"]
    assert fn(completions, y=[1.0, 1.0, 1.0, 0.0]) == pytest.approx([0.96, 0.96, 0.0, 0.91])
    assert cut_at_stops("0.4</prob>x\n", ["</prob>", "\n"]) == "0.4"
    assert make_reward_fn("log", [])(["0.25"], y=[0.0]) == pytest.approx([math.log(0.75)])
    with pytest.raises(ValueError):
        make_reward_fn("accuracy", [])


def test_sparse_labels_are_fixed_draws_and_swapped_prompts_flip_them() -> None:
    votes = [3, 1, 1]
    draws = [sparse_label(votes, f"item{i}", 0, "half") for i in range(2000)]
    assert draws == [sparse_label(votes, f"item{i}", 0, "half") for i in range(2000)]
    freq = {v: draws.count(v) / len(draws) for v in (0.0, 1.0, 0.5)}
    assert freq[0.0] == pytest.approx(0.6, abs=0.04) and freq[0.5] == pytest.approx(0.2, abs=0.04)
    assert sparse_label([0, 0, 2], "x", 0, "drop") is None
    prompts = [
        VerbalPrompt("canon", 0.2, [4, 0, 0], "q1", swapped=False),
        VerbalPrompt("swapped", 0.8, [0, 4, 0], "q1", swapped=True),
        VerbalPrompt("tie", 0.5, [0, 0, 3], "q2", swapped=False),
    ]
    rows, dropped = sparse_dataset(prompts, seed=0, ties="drop")
    assert [(r["prompt"], r["y"]) for r in rows] == [("canon", 0.0), ("swapped", 1.0)]
    assert dropped == 1


@pytest.mark.parametrize("rule", ["brier", "log"])
def test_multiclass_rewards_are_proper(rule: str) -> None:
    """Brute force over the simplex in steps of 0.01: for y ~ pi the expected reward peaks at
    q = pi, and an unparsable reply scores the worst value the rule can give."""
    ticks = np.arange(101)
    grid = np.array([(a, b, 100 - a - b) for a in ticks for b in ticks if a + b <= 100]) / 100
    reward = multiclass_brier_reward if rule == "brier" else multiclass_log_reward
    table = np.array([[reward(q, y) for y in range(3)] for q in grid])  # (points, label)
    for pi in ([0.6, 0.3, 0.1], [0.2, 0.2, 0.6], [0.05, 0.9, 0.05], [0.34, 0.33, 0.33]):
        best = grid[int(np.argmax(table @ np.asarray(pi)))]
        assert best == pytest.approx(pi, abs=1e-9)
    assert reward(None, 1) <= table.min() + 1e-12
    # Brier: 1 - half the squared distance to the one-hot vote, checked by hand
    assert multiclass_brier_reward([0.6, 0.3, 0.1], 0) == pytest.approx(1 - 0.5 * 0.26)


def test_label_task_reward_fn_parses_like_the_harness() -> None:
    fn = make_reward_fn("brier", ["\n"], label_set=NLI)
    replies = [" entailment: 0.6, neutral: 0.3, contradiction: 0.1\nmore", "it entails", ""]
    assert fn(replies, y=[0, 2, 1]) == pytest.approx([1 - 0.5 * 0.26, 0.0, 0.0])
    log = make_reward_fn("log", ["\n"], clip=0.05, label_set=NLI)
    assert log(["neutral: 1, entailment: 0, contradiction: 0"], y=[0]) == [math.log(0.05)]


def test_distribution_targets_are_distributions_that_parse_back_to_p() -> None:
    rng = np.random.default_rng(0)
    ps = [[0.2, 0.8, 0.0], [1 / 3, 1 / 3, 1 / 3], [0.6, 0.2, 0.2], [1.0, 0.0, 0.0]]
    ps += rng.dirichlet([0.5, 0.5, 0.5], size=200).tolist()
    for p in ps:
        cents = hundredths(p)
        assert sum(cents) == 100 and min(cents) >= 0
        assert np.abs(np.asarray(cents) / 100 - p).max() < 0.01
        text = distribution_text(p, NLI)
        assert text.startswith(" entailment: ") and text.endswith("\n")
        assert parse_distribution(text, NLI) == pytest.approx(np.asarray(cents) / 100)
        q, parsed = verbal_q(cut_at_stops(text, ["\n"]), NLI)  # as the harness reads a reply
        assert parsed and np.abs(np.asarray(q) - p).max() < 0.02  # 0.01 rounding + 0.01 floor


def test_label_task_votes_are_fixed_draws_of_a_label() -> None:
    votes = [1, 3, 1]
    draws = [sparse_vote(votes, f"item{i}", 0) for i in range(3000)]
    assert draws == [sparse_vote(votes, f"item{i}", 0) for i in range(3000)]
    assert np.bincount(draws, minlength=3) / 3000 == pytest.approx([0.2, 0.6, 0.2], abs=0.03)
    prompts = [VerbalPrompt("nli", None, [0, 0, 5], "n1", swapped=False, p=[0, 0, 1])]
    rows, dropped = sparse_dataset(prompts, seed=0, ties="drop")
    assert rows == [{"prompt": "nli", "y": 2, "id": "n1"}] and dropped == 0


def test_grpo_with_fewer_prompts_than_a_generation_batch_is_an_error(caplog) -> None:
    """TRL would train zero steps and save an untouched adapter."""
    from types import SimpleNamespace

    from distjudge_trainer.grpo import check_prompt_count

    args = SimpleNamespace(generation_batch_size=8, num_generations=4)  # 2 prompts per batch
    with pytest.raises(UserError, match="--max_train_items"):
        check_prompt_count(1, args)
    check_prompt_count(3, args)
    assert "leaves out 1 of 3 prompts" in caplog.text


@pytest.fixture(scope="module")
def tokenizer(embedded_tokenizer):
    return embedded_tokenizer


def test_training_prompts_are_the_harness_prompts(tokenizer, data_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("DISTJUDGE_DATA_DIR", str(data_dir))
    from distjudge_eval.pairwise import binary_target
    from distjudge_trainer.data import load_task
    from distjudge_trainer.verbal_data import build_prompts

    prompts, gen_kwargs = build_prompts("distjudge_mtbench_verbalized", tokenizer, max_items=3)
    assert len(prompts) == 6 and gen_kwargs["until"] == ["</prob>", "\n"]
    task = load_task("distjudge_mtbench_verbalized")
    doc = next(iter(task.training_docs()))
    assert prompts[0].prompt.startswith("You are judging which of two")
    assert prompts[0].prompt.endswith("Answer: <prob>")
    assert doc["answer_a"] in prompts[0].prompt
    canon, swapped = prompts[0], next(p for p in prompts if p.swapped and p.item_id == doc["id"])
    assert swapped.prob_b == pytest.approx(1 - canon.prob_b)
    assert canon.prob_b == pytest.approx(binary_target(doc["p"])[1])
    short, _ = build_prompts(
        "distjudge_mtbench_verbalized", tokenizer, max_items=2, max_prompt_tokens=400
    )
    assert all(len(tokenizer.encode(p.prompt)) <= 400 for p in short)
    assert len({p.item_id for p in short}) == 2 and len(short) == 4
    chat, _ = build_prompts(
        "distjudge_mtbench_verbalized", tokenizer, max_items=1, apply_chat_template=True
    )
    assert chat[0].prompt.rstrip().endswith("<prob>") and "<|im_start|>assistant" in chat[0].prompt
    # SFT rows (pairwise): both orders, the completion is P(B better) as the harness reads it
    from distjudge_eval.verbalized import parse_probability
    from distjudge_trainer.config import VerbalizedConfig
    from distjudge_trainer.sft import sft_rows

    # --swap_augment unset and no preflight: resolved from the task's twin (it was read as
    # False here, so one order, before the config resolved it itself)
    config = VerbalizedConfig(max_train_items=3)
    rows = sft_rows(config, tokenizer)
    assert [r["prompt"] for r in rows] == [vp.prompt for vp in prompts]
    for row, vp in zip(rows, prompts, strict=True):
        assert row["completion"].endswith("</prob>")
        assert parse_probability(row["completion"]) == pytest.approx(vp.prob_b, abs=0.005)


def test_label_task_prompts_targets_and_swap_default(
    tokenizer, data_dir: Path, monkeypatch
) -> None:
    """SNLI verbalized: one order (no twin, so swap augmentation is off by default and an
    explicit --swap_augment True is a one-line error), prompts as the harness builds them, and
    SFT completions that the harness reads back as p."""
    monkeypatch.setenv("DISTJUDGE_DATA_DIR", str(data_dir))
    from distjudge_trainer.config import VerbalizedConfig
    from distjudge_trainer.data import load_task
    from distjudge_trainer.parsing import preflight
    from distjudge_trainer.sft import sft_rows
    from distjudge_trainer.verbal_data import build_prompts

    snli = VerbalizedConfig(task="distjudge_snli_verbalized", max_train_items=3)
    preflight(snli, "distjudge sft")
    assert snli.swap_augment is False
    pairwise = VerbalizedConfig(task="distjudge_mtbench_verbalized")
    preflight(pairwise, "distjudge sft")
    assert pairwise.swap_augment is True
    with pytest.raises(UserError, match="--swap_augment False"):
        preflight(VerbalizedConfig(task="distjudge_snli_verbalized", swap_augment=True), "x")

    prompts, gen_kwargs = build_prompts("distjudge_snli_verbalized", tokenizer, max_items=3,
                                        swap_augment=False)  # fmt: skip
    docs = list(load_task("distjudge_snli_verbalized").training_docs())[:3]
    assert gen_kwargs["until"] == ["\n"] and len(prompts) == 3
    for vp, doc in zip(prompts, docs, strict=True):
        assert vp.item_id == doc["id"] and vp.prob_b is None and vp.p == doc["p"]
        assert doc["hypothesis"] in vp.prompt and vp.prompt.endswith("Answer:")
    rows = sft_rows(snli, tokenizer)
    assert [r["prompt"] for r in rows] == [vp.prompt for vp in prompts]
    for row, doc in zip(rows, docs, strict=True):
        q, parsed = verbal_q(cut_at_stops(row["completion"], ["\n"]), NLI)
        assert parsed and np.abs(np.asarray(q) - doc["p"]).max() < 0.02
    # --sft_targets vote: the vote GRPO draws for the item (same seed), with probability 1
    snli.sft_targets, snli.label_seed = "vote", 3
    for row, doc in zip(sft_rows(snli, tokenizer), docs, strict=True):
        vote = sparse_vote(doc["votes"], doc["id"], 3)
        assert parse_distribution(row["completion"], NLI) == [float(i == vote) for i in range(3)]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("method", "task"),
    [
        # pairwise SFT rows are checked above without a model; GRPO covers the pairwise run
        ("grpo", "distjudge_mtbench_verbalized"),
        ("sft", "distjudge_snli_verbalized"),
        ("grpo", "distjudge_snli_verbalized"),
    ],
)
def test_sft_and_grpo_train_and_the_harness_scores_the_adapter(
    method: str, task: str, tmp_path: Path, data_dir: Path
) -> None:
    env = {**os.environ, "DISTJUDGE_DATA_DIR": str(data_dir)}
    out = tmp_path / method
    cmd = [sys.executable, "-m", "distjudge_eval.cli", method, "--output_dir", str(out)]
    # one GRPO step takes 4 / 2 = 2 distinct prompts: MT-Bench's 1 item in 2 orders, or 2 items
    items = "2" if method == "grpo" and "snli" in task else "1"
    cmd += ["--task", task, "--max_train_items", items, "--max_prompt_tokens", "250"]
    cmd += ["--max_steps", "1", "--learning_rate", "1e-3", "--logging_steps", "1"]
    if method == "grpo":
        # MT-Bench: the one short prompt's drawn vote is a tie: --ties half keeps it (target 0.5)
        cmd += ["--per_device_train_batch_size", "4", "--num_generations", "2", "--ties", "half"]
    else:
        cmd += ["--per_device_train_batch_size", "2"]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (out / "adapter_model.safetensors").is_file()
    saved = json.loads((out / "distjudge_config.json").read_text())
    assert saved["distjudge"]["task"] == task
    pairwise = "mtbench" in task
    assert saved["distjudge"]["swap_augment"] is pairwise  # the default: when a twin exists
    logs = res.stdout + res.stderr
    key = "rewards/brier_score/mean" if method == "grpo" else "'loss'"
    assert key in logs
    if method == "grpo":  # completions get the task's reply budget (max_gen_toks)
        assert f"completions of <= {8 if pairwise else 32} tokens" in logs
    evaluate = [line for line in res.stdout.splitlines() if line.startswith("evaluate: ")]
    hint = evaluate[0].split()[2:]  # "evaluate: distjudge eval ..." -> the eval arguments
    assert hint[hint.index("--tasks") + 1] == (f"{task},{task}_swapped" if pairwise else task)
    cmd = [sys.executable, "-m", "distjudge_eval.cli", *hint, "--limit", "1"]
    cmd += ["--output_path", str(out)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    (results,) = out.glob("**/results_*.json")
    scored = json.loads(results.read_text())["results"]
    assert set(scored) >= ({task, f"{task}_swapped"} if pairwise else {task})
    assert "parse_fail,none" in scored[task]
