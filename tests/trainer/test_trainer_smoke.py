"""CPU smoke test of the trainer on the embedded SmolLM2: the real CLI trains a LoRA adapter on
a fixed batch of SNLI train items, the loss on that batch goes down, and the adapter loads in
the harness (stock hf and hf-judge) and changes q."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from distjudge_eval.embedded import EMBEDDED_GGUF, embedded_model_dir, embedded_weights

pytestmark = pytest.mark.slow
N_ITEMS = 4


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("adapter")
    cmd = [
        sys.executable,
        "-m",
        "distjudge_trainer",
        "--task",
        "distjudge_snli",
        "--output_dir",
        str(out),
    ]
    cmd += ["--max_train_items", str(N_ITEMS), "--per_device_train_batch_size", str(N_ITEMS)]
    cmd += ["--max_steps", "6", "--learning_rate", "3e-3", "--logging_steps", "2"]
    cmd += ["--save_strategy", "no", "--data_dir", str(data_dir), "--seed", "0"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    logged = proc.stdout + proc.stderr
    for key in ("train_kl", "train_kl_adv", "train_ce", "train_acc", "train_adv_gap"):
        assert key in logged, key
    assert "distjudge eval --model hf-judge" in proc.stdout
    assert "is_gradient_checkpointing" not in proc.stderr  # peft's read of a deprecated name
    return out


def test_adapter_and_config_are_saved(trained: Path) -> None:
    assert (trained / "adapter_config.json").is_file()
    assert (trained / "adapter_model.safetensors").is_file()
    record = json.loads((trained / "distjudge_config.json").read_text())
    assert record["distjudge"]["alpha"] == 0.8 and record["distjudge"]["epsilon"] == 0.25
    # the embedded judge trains from distjudge's converted copy of its GGUF file
    assert record["distjudge"]["model"] == str(embedded_weights()[0])
    assert not record["distjudge"].get("gguf_file")


@pytest.fixture(scope="module")
def adapted_model(trained: Path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, _ = embedded_weights()  # the copy is the GGUF model bit for bit (test_e2e_stock)
    tok = AutoTokenizer.from_pretrained(folder)
    base = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    return tok, PeftModel.from_pretrained(base, str(trained)).eval()


def test_loss_on_the_training_batch_goes_down(adapted_model, data_dir: Path, monkeypatch) -> None:
    from distjudge_eval.readout import label_scores
    from distjudge_trainer.data import build_examples, collate
    from distjudge_trainer.objective import hybrid_loss

    monkeypatch.setenv("DISTJUDGE_DATA_DIR", str(data_dir))
    tok, model = adapted_model
    batch = collate(build_examples("distjudge_snli", tok, max_items=N_ITEMS))

    def loss() -> float:
        with torch.no_grad():
            scores = label_scores(model, batch["items"], pad_id=tok.pad_token_id or 0).scores
        return float(hybrid_loss(scores, batch["p"], batch["target"], 0.8, 0.25).loss)

    after = loss()
    with model.disable_adapter():
        before = loss()
    assert after < before - 0.05, (before, after)


def run_eval(out: Path, data_dir: Path, model: str, model_args: str) -> list[dict]:
    cmd = [sys.executable, "-m", "distjudge_eval.cli", "eval", "--model", model, "--model_args"]
    cmd += [model_args, "--tasks", "distjudge_snli", "--limit", "2", "--output_path", str(out)]
    cmd += ["--data_dir", str(data_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "is_gradient_checkpointing" not in proc.stderr  # loading peft=: silenced, see above
    (path,) = out.glob("**/samples_distjudge_snli_*.jsonl")
    return [json.loads(line) for line in path.open()]


@pytest.mark.parametrize("backend", ["hf", "hf-judge"])
def test_adapter_loads_in_the_harness_and_changes_q(
    backend: str, trained: Path, adapted_model, data_dir: Path, tmp_path: Path
) -> None:
    from distjudge_eval.readout import encode_item, label_scores

    tok, model = adapted_model
    args = (
        f"pretrained={embedded_model_dir()},gguf_file={EMBEDDED_GGUF},dtype=float32,peft={trained}"
    )
    rows = run_eval(tmp_path, data_dir, backend, args)
    for row in rows:
        reqs = [row["arguments"][f"gen_args_{i}"] for i in range(3)]
        item = encode_item(tok.encode, reqs[0]["arg_0"], [r["arg_1"] for r in reqs])
        with torch.no_grad():
            q_adapted = label_scores(model, [item]).log_q.exp()[0].numpy()
            with model.disable_adapter():
                q_base = label_scores(model, [item]).log_q.exp()[0].numpy()
        np.testing.assert_allclose(row["ece"]["q"], q_adapted, atol=1e-4)
        assert np.abs(q_adapted - q_base).max() > 1e-3
