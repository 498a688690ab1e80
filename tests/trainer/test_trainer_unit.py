"""The Trainer subclass on a tiny random Llama (issue #12): its loss is the hybrid objective of
label scores computed here with plain transformers, and a step moves the LoRA weights (or all
weights) the way the loss asks; evaluation (``--eval_items``) reports per epoch the item-mean
KL(p‖q) etc. of train and test items, computed apart from the training running means. Seconds,
no data dir (the one test of ``train()`` saves the tiny model and a task to tmp_path)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import entropy
from tiny_models import byte_tokenizer, one_thread, tiny_llama

from distjudge_eval.readout import encode_item, label_first_tokens
from distjudge_trainer.args import DistJudgeTrainingArguments
from distjudge_trainer.batching import item_tokens
from distjudge_trainer.cli import eval_history, save_run, train, with_lora
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
HELD_OUT = [  # "test-split" items for evaluation
    ("Is snow cold?\nAnswer:", [0.9, 0.1, 0.0], [1.0, 0.0, 0.0]),
    ("Can a cat fly?\nAnswer:", [0.0, 0.7, 0.3], [0.0, 1.0, 0.0]),
    ("Is this sentence long enough to matter?\nAnswer:", [0.3, 0.3, 0.4], [0.0, 0.0, 1.0]),
]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def tok():
    return byte_tokenizer()


def examples(tok, rows: list = ITEMS) -> list[TrainExample]:
    def encode(s: str) -> list[int]:
        return tok.encode(s, add_special_tokens=False)

    return [
        TrainExample(encode_item(encode, prompt, LABELS), p, target, f"i{n}")
        for n, (prompt, p, target) in enumerate(rows)
    ]


def make_trainer(
    tok,
    tmp_path: Path,
    *,
    lora: bool = True,
    steps: int = 1,
    eval_dataset=None,
    training: dict | None = None,
    rows: list = ITEMS,
    **settings,
):
    config = DistJudgeConfig(lora_dropout=0.0, use_lora=lora, **settings)
    model = tiny_llama()
    if lora:
        model = with_lora(model, config)
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
        **(training or {}),
    )
    first_tokens = None
    if config.readout == "first_token":
        first_tokens = label_first_tokens(lambda s: tok.encode(s, add_special_tokens=False), LABELS)
    return DistJudgeTrainer(
        model=model,
        args=args,
        train_dataset=examples(tok, rows),
        eval_dataset=eval_dataset,
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


def test_activation_checkpointing_trains_the_same_step(tok, tmp_path: Path) -> None:
    """Recomputing activations (the shared-prefix pass is off then: it needs a KV cache) gives
    the same loss and the same updated weights as a plain step."""
    shared = [("Answer yes, no or maybe.\n" + prompt, p, target) for prompt, p, target in ITEMS]
    runs = []
    for on in (False, True):
        # SGD: the update is the gradient (Adam's first step divides out its scale)
        training = {"activation_checkpointing": on, "optim": "sgd"}
        # a shared prompt prefix: the plain step runs it once, with a KV cache
        trainer = make_trainer(tok, tmp_path / str(on), steps=1, training=training, rows=shared)
        trainer.train()
        assert trainer.model.base_model.model.is_activation_checkpointing == on
        loss = next(row["loss"] for row in trainer.state.log_history if "loss" in row)
        weights = {n: w.detach() for n, w in trainer.model.named_parameters() if w.requires_grad}
        runs.append((loss, weights))
    (plain_loss, plain), (ckpt_loss, ckpt) = runs
    assert ckpt_loss == pytest.approx(plain_loss, rel=1e-5)
    assert plain.keys() == ckpt.keys()
    assert any(w.abs().sum() > 0 for n, w in plain.items() if "lora_B" in n)  # the step moved B
    for name, w in plain.items():
        torch.testing.assert_close(ckpt[name], w, rtol=1e-5, atol=1e-6)


# --- evaluation: --eval_items scores train and test items at each epoch ---

EVAL_KEYS = ("loss", "kl", "kl_adv", "adv_gap", "ce", "acc", "items")
PER_EPOCH = {"eval_strategy": "epoch", "per_device_eval_batch_size": 2}  # uneven last batch


def eval_sets(tok) -> dict[str, list[TrainExample]]:
    return {"train": examples(tok), "test": examples(tok, HELD_OUT)}


def by_hand(trainer, items: list[TrainExample]) -> dict[str, float]:
    """Item means of KL(p‖q) (scipy), CE against the plurality and accuracy, with q the softmax
    of label scores computed here item by item with plain transformers."""
    model, mode = trainer.model.eval(), trainer.dj.readout
    with torch.no_grad():
        scores = direct_scores(model, [ex.item for ex in items], mode, trainer.first_tokens)
    q = torch.softmax(scores.double(), -1)
    pairs = list(zip(items, q, strict=True))
    kl = [entropy(ex.p, q_row.numpy()) for ex, q_row in pairs]
    ce = [-(torch.tensor(ex.target).double() * q_row.log()).sum().item() for ex, q_row in pairs]
    acc = [ex.target[int(q_row.argmax())] for ex, q_row in pairs]
    return {name: sum(v) / len(v) for name, v in (("kl", kl), ("ce", ce), ("acc", acc))}


def test_eval_metrics_are_logged_each_epoch_for_train_and_test_items(tok, tmp_path: Path) -> None:
    trainer = make_trainer(tok, tmp_path, steps=2, eval_dataset=eval_sets(tok), training=PER_EPOCH)
    trainer.train()
    evals = [row for row in trainer.state.log_history if any(k.startswith("eval_") for k in row)]
    assert [(row["epoch"], "eval_train_kl" in row) for row in evals] == [
        (1.0, True),
        (1.0, False),
        (2.0, True),
        (2.0, False),
    ]
    for row in evals:
        split = "train" if "eval_train_kl" in row else "test"
        assert all(f"eval_{split}_{key}" in row for key in EVAL_KEYS), row
        assert row[f"eval_{split}_items"] == (len(ITEMS) if split == "train" else len(HELD_OUT))
        assert row[f"eval_{split}_adv_gap"] >= -1e-9
    # the training moves the model, so the two evaluations differ
    assert evals[0]["eval_train_kl"] != evals[2]["eval_train_kl"]
    history = eval_history(trainer.state.log_history)
    assert [(row["epoch"], row["step"]) for row in history] == [(1.0, 1), (2.0, 2)]
    for row in history:
        assert {f"eval_{s}_{k}" for s in ("train", "test") for k in EVAL_KEYS} <= set(row)
        assert not any(k.endswith("_runtime") for k in row)
    out = save_run(trainer, tok, trainer.dj, trainer.args)
    assert json.loads((out / "eval_history.json").read_text()) == history


@pytest.mark.parametrize("readout", ["full", "first_token"])
def test_eval_kl_ce_acc_equal_an_independent_computation(tok, tmp_path: Path, readout: str) -> None:
    """After two steps (two epochs of one step), the last evaluation's means over the train items
    and over the held-out items are those computed by hand on the trained model."""
    sets = eval_sets(tok)
    trainer = make_trainer(
        tok, tmp_path, steps=2, eval_dataset=sets, training=PER_EPOCH, readout=readout
    )
    trainer.train()
    last = eval_history(trainer.state.log_history)[-1]
    assert last["epoch"] == 2.0
    for split, items in sets.items():
        for name, value in by_hand(trainer, items).items():
            assert last[f"eval_{split}_{name}"] == pytest.approx(value, rel=1e-4, abs=2e-6)
    # predict() (prediction_loss_only False) returns the label scores and p
    out = trainer.predict(sets["test"])
    assert out.predictions.shape == (len(HELD_OUT), len(LABELS))
    assert torch.allclose(torch.as_tensor(out.label_ids), torch.tensor([p for _, p, _ in HELD_OUT]))
    assert out.metrics["test_kl"] == pytest.approx(last["eval_test_kl"], abs=2e-6)


def test_evaluation_leaves_the_training_running_means_alone(tok, tmp_path: Path) -> None:
    """Training logs are the same with and without evaluations in between (one at the start,
    one after each epoch), and the first step's train_kl is still that of the untrained model."""

    def train_rows(trainer) -> list[dict]:
        keep = ("loss", "train_kl", "train_kl_adv", "train_ce", "train_acc", "train_adv_gap")
        trainer.train()
        rows = [row for row in trainer.state.log_history if "train_kl" in row]
        return [{k: row[k] for k in keep} for row in rows]

    plain = make_trainer(tok, tmp_path / "plain", steps=3)
    with torch.no_grad():
        inputs = collate(examples(tok))
        scores = direct_scores(plain.model.eval(), inputs["items"])
    kl_before = hybrid_loss(scores, inputs["p"], inputs["target"], 0.8, 0.0).kl.item()
    evaluated = make_trainer(
        tok,
        tmp_path / "evaluated",
        steps=3,
        eval_dataset=eval_sets(tok),
        training={**PER_EPOCH, "eval_on_start": True},
    )
    without, with_eval = train_rows(plain), train_rows(evaluated)
    assert len(with_eval) == 3 and with_eval == without
    assert with_eval[0]["train_kl"] == pytest.approx(kl_before, rel=1e-4)
    n_evals = sum("eval_test_kl" in row for row in evaluated.state.log_history)
    assert n_evals == 4  # at the start and after each of the 3 one-step epochs


def test_train_with_eval_items_writes_the_eval_history(tok, tmp_path: Path) -> None:
    """train() as the CLI runs it, on a user's task (--include_path) and the tiny model saved to
    disk: --eval_items 2 alone evaluates after each epoch, on 2 of the trained items and 2
    test-split items, and the run folder gets eval_history.json."""
    folder = tmp_path / "tasks"
    folder.mkdir()
    splits = {"train": ITEMS, "test": HELD_OUT}
    for split, rows in splits.items():
        lines = [
            json.dumps({"id": f"{split}{n}", "text": prompt.removesuffix("\nAnswer:"), "p": p})
            for n, (prompt, p, _) in enumerate(rows)
        ]
        (folder / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "mytask_eval.yaml").write_text(
        "task: mytask_eval\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
        + "".join(f"    {split}: {folder / split}.jsonl\n" for split in splits)
        + "output_type: multiple_choice\ntraining_split: train\ntest_split: test\n"
        'doc_to_text: "{{text}}\\nAnswer:"\ndoc_to_choice: ["yes", "no", "maybe"]\n'
        "doc_to_target: 0\nmetric_list:\n  - metric: acc\n"
    )
    model_dir = tmp_path / "model"
    tiny_llama().save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    config = DistJudgeConfig(
        task="mytask_eval",
        include_path=str(folder),
        model=str(model_dir),
        max_train_items=3,
        eval_items=2,
        lora_dropout=0.0,
        data_dir=str(tmp_path),  # a user task reads no data dir, but one must exist
    )
    args = DistJudgeTrainingArguments(
        output_dir=str(tmp_path / "run"),
        num_train_epochs=2,
        per_device_train_batch_size=3,
        save_strategy="no",
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
    )
    out = train(config, args)
    history = json.loads((out / "eval_history.json").read_text())
    assert [(row["epoch"], row["step"]) for row in history] == [(1.0, 1), (2.0, 2)]
    for row in history:
        assert row["eval_train_items"] == 2 and row["eval_test_items"] == 2
        assert row["eval_test_kl"] > 0 and row["eval_train_kl"] > 0


def test_trainer_weighs_every_item_the_same_whatever_its_batch(tok, tmp_path: Path) -> None:
    """One epoch of budget batches of unequal size: the mean of the scaled batch losses equals
    the objective's mean over all items at once (the stock per-batch mean would not)."""
    lengths = [item_tokens(ex.item) for ex in examples(tok)]
    budget = 2 * max(lengths)  # 4 items of unequal length: batches of 2 or 1
    trainer = make_trainer(tok, tmp_path, max_tokens_per_batch=budget, epsilon=0.0)
    loader = trainer.get_train_dataloader()
    sizes = [len(batch["items"]) for batch in loader]
    assert sum(sizes) == len(ITEMS) and len(set(sizes)) > 1, sizes
    for batch in trainer.budget_sampler:
        assert len(batch) * max(lengths[i] for i in batch) <= budget or len(batch) == 1
    model = trainer.model.train()
    with torch.no_grad():
        scaled = [trainer.compute_loss(model, batch).item() for batch in loader]
        everything = collate(examples(tok))
        scores = trainer.scores(model, everything["items"])
        whole = hybrid_loss(scores, everything["p"], everything["target"], 0.8, 0.0).loss.item()
    assert np.mean(scaled) == pytest.approx(whole, rel=1e-5)
    assert len(scaled) == len(trainer.budget_sampler)


def test_trainer_trains_on_budget_batches(tok, tmp_path: Path) -> None:
    trainer = make_trainer(tok, tmp_path, steps=-1, max_tokens_per_batch=80,
                           training={"num_train_epochs": 2})  # fmt: skip
    trainer.train()
    assert trainer.state.global_step == 2 * len(trainer.budget_sampler)
    rows = [row for row in trainer.state.log_history if "train_kl" in row]
    assert rows and all(np.isfinite(row["train_kl"]) for row in rows)
