"""Verbalized-judge training: rewards are proper scoring rules, sparse labels are drawn and flipped
as documented, prompts equal the harness's, and SFT / GRPO run end to end on CPU."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from distjudge_trainer.rewards import brier_reward, cut_at_stops, log_reward, make_reward_fn
from distjudge_trainer.verbal_data import VerbalPrompt, sparse_dataset, sparse_label


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


@pytest.mark.slow
@pytest.mark.parametrize("method", ["sft", "grpo"])
def test_sft_and_grpo_train_and_the_harness_scores_the_adapter(
    method: str, tmp_path: Path, data_dir: Path
) -> None:
    env = {**os.environ, "DISTJUDGE_DATA_DIR": str(data_dir)}
    out = tmp_path / method
    cmd = [sys.executable, "-m", "distjudge_eval.cli", method, "--output_dir", str(out)]
    cmd += ["--max_train_items", "1", "--max_prompt_tokens", "250", "--max_steps", "1"]
    cmd += ["--learning_rate", "1e-3", "--logging_steps", "1"]
    if method == "grpo":
        # the one short prompt's drawn vote is a tie: --ties half keeps it (target 0.5)
        cmd += ["--per_device_train_batch_size", "4", "--num_generations", "2", "--ties", "half"]
    else:
        cmd += ["--per_device_train_batch_size", "2"]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (out / "adapter_model.safetensors").is_file()
    saved = json.loads((out / "distjudge_config.json").read_text())
    assert saved["distjudge"]["task"] == "distjudge_mtbench_verbalized"
    logs = res.stdout + res.stderr
    key = "rewards/brier_score/mean" if method == "grpo" else "'loss'"
    assert key in logs
    evaluate = [line for line in res.stdout.splitlines() if line.startswith("evaluate: ")]
    hint = evaluate[0].split()[2:]  # "evaluate: distjudge eval ..." -> the eval arguments
    cmd = [sys.executable, "-m", "distjudge_eval.cli", *hint, "--limit", "1"]
    cmd += ["--output_path", str(out)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    (results,) = out.glob("**/results_*.json")
    scored = json.loads(results.read_text())["results"]
    assert {"distjudge_mtbench_verbalized", "distjudge_mtbench_verbalized_swapped"} <= set(scored)
    assert "parse_fail,none" in scored["distjudge_mtbench_verbalized"]
