"""The Trainer subclass on a tiny random Llama (issue #12): its loss is the hybrid objective of
label scores computed here with plain transformers, and a step moves the LoRA weights (or all
weights) the way the loss asks. Seconds, no weights on disk, no data dir."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from peft import get_peft_model
from tiny_models import byte_tokenizer, one_thread, tiny_llama

from distjudge_eval.readout import encode_item, label_first_tokens
from distjudge_trainer.args import DistJudgeTrainingArguments
from distjudge_trainer.cli import lora_config
from distjudge_trainer.config import DistJudgeConfig
from distjudge_trainer.data import TrainExample, collate
from distjudge_trainer.objective import hybrid_loss
from distjudge_trainer.trainer import DistJudgeTrainer

LABELS = [" yes", " no", " maybe"]
ITEMS = [  # (prompt, human p, plurality target)
    ("Is the sky blue?\nAnswer:", [0.8, 0.0, 0.2], [1.0, 0.0, 0.0]),
    ("Is ice hot?\nAnswer:", [0.0, 1.0, 0.0], [0.0, 1.0, 0.0]),
    ("Will it rain tomorrow in a city you do not know?\nAnswer:", [0.4, 0.2, 0.4], [0.5, 0, 0.5]),
    ("Do fish swim?\nAnswer:", [0.6, 0.2, 0.2], [1.0, 0.0, 0.0]),
]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def tok():
    return byte_tokenizer()


def examples(tok) -> list[TrainExample]:
    def encode(s: str) -> list[int]:
        return tok.encode(s, add_special_tokens=False)

    return [
        TrainExample(encode_item(encode, prompt, LABELS), p, target, f"i{n}")
        for n, (prompt, p, target) in enumerate(ITEMS)
    ]


def make_trainer(tok, tmp_path: Path, *, lora: bool = True, steps: int = 1, **settings):
    config = DistJudgeConfig(lora_dropout=0.0, use_lora=lora, **settings)
    model = tiny_llama()
    if lora:
        model = get_peft_model(model, lora_config(config))
    args = DistJudgeTrainingArguments(
        output_dir=str(tmp_path),
        max_steps=steps,
        per_device_train_batch_size=len(ITEMS),
        learning_rate=1e-2,
        logging_steps=1,
        save_strategy="no",
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
    )
    first_tokens = None
    if config.readout == "first_token":
        first_tokens = label_first_tokens(lambda s: tok.encode(s, add_special_tokens=False), LABELS)
    return DistJudgeTrainer(
        model=model,
        args=args,
        train_dataset=examples(tok),
        data_collator=collate,
        processing_class=tok,
        dj_config=config,
        first_tokens=first_tokens,
    )


def direct_scores(model, items, mode: str = "full", first_tokens=None) -> torch.Tensor:
    """[B, K] label scores, each (prompt, label) run as its own unpadded sequence."""
    rows = []
    for item in items:
        row = []
        for k, cont in enumerate(item.continuations):
            seq = torch.tensor([item.context + cont])
            logp = torch.log_softmax(model(input_ids=seq).logits[0].float(), -1)
            if mode == "full":
                picked = logp[len(item.context) - 1 : -1].gather(-1, torch.tensor(cont)[:, None])
                row.append(picked.sum())
            else:
                row.append(torch.logsumexp(logp[len(item.context) - 1, first_tokens[k]], 0))
        rows.append(torch.stack(row))
    return torch.stack(rows)


@pytest.mark.parametrize(
    "settings",
    [
        {"alpha": 0.8, "epsilon": 0.25, "pgd_steps": 5},
        {"alpha": 0.5, "epsilon": 0.1, "pgd_steps": 3, "readout": "first_token"},
    ],
)
def test_loss_is_the_hybrid_objective_of_directly_computed_scores(
    tok, tmp_path: Path, settings: dict
) -> None:
    trainer = make_trainer(tok, tmp_path, **settings)
    model, inputs = trainer.model.eval(), collate(examples(tok))
    with torch.no_grad():
        loss = trainer.compute_loss(model, inputs)
        scores = direct_scores(model, inputs["items"], trainer.dj.readout, trainer.first_tokens)
    d = trainer.dj
    want = hybrid_loss(scores, inputs["p"], inputs["target"], d.alpha, d.epsilon, d.pgd_steps)
    assert loss.item() == pytest.approx(want.loss.item(), rel=1e-4)


def test_kl_only_and_ce_only_losses_match_hand_formulas(tok, tmp_path: Path) -> None:
    inputs = collate(examples(tok))
    p, target = inputs["p"].double(), inputs["target"].double()
    for alpha, hand in (
        (1.0, lambda log_q: (torch.xlogy(p, p) - p * log_q).sum(-1).mean()),  # KL(p‖q)
        (0.0, lambda log_q: -(target * log_q).sum(-1).mean()),  # CE(q, r)
    ):
        trainer = make_trainer(tok, tmp_path, alpha=alpha, epsilon=0.0)
        model = trainer.model.eval()
        with torch.no_grad():
            loss = trainer.compute_loss(model, inputs)
            log_q = torch.log_softmax(direct_scores(model, inputs["items"]).double(), -1)
        assert loss.item() == pytest.approx(hand(log_q).item(), rel=1e-4)


@pytest.mark.parametrize("lora", [True, False])
def test_a_step_moves_the_trained_weights_and_lowers_the_loss(
    tok, tmp_path: Path, lora: bool
) -> None:
    trainer = make_trainer(tok, tmp_path, lora=lora, steps=3, alpha=0.8, epsilon=0.25)
    model, inputs = trainer.model, collate(examples(tok))
    before = {n: w.detach().clone() for n, w in model.named_parameters()}
    with torch.no_grad():
        loss_before = trainer.compute_loss(model.eval(), inputs).item()
        scores = direct_scores(model, inputs["items"])
    kl_before = hybrid_loss(scores, inputs["p"], inputs["target"], 0.8, 0.0).kl.item()
    trainer.train()
    with torch.no_grad():
        loss_after = trainer.compute_loss(model.eval(), inputs).item()
    moved = {n for n, w in model.named_parameters() if not torch.equal(w, before[n])}
    trainable = {n for n, w in model.named_parameters() if w.requires_grad}
    if lora:
        assert trainable and all("lora_" in n for n in trainable)
        assert moved and moved <= trainable  # the base model is frozen
        assert any("lora_B" in n for n in moved)  # B starts at 0: the adapter now does something
    else:
        assert "model.layers.0.self_attn.q_proj.weight" in moved
    assert loss_after < loss_before
    logged = [row for row in trainer.state.log_history if "loss" in row]
    assert len(logged) == 3
    for key in ("train_kl", "train_kl_adv", "train_ce", "train_acc", "train_adv_gap"):
        assert key in logged[0]
    assert logged[0]["train_adv_gap"] >= -1e-9  # the adversary never lowers KL
    # the first step logs KL(p‖q) of the model before any update
    assert logged[0]["train_kl"] == pytest.approx(kl_before, rel=1e-4)
