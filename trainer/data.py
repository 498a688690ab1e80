"""Training examples from the same lm-eval task the harness evaluates: same prompts, labels,
continuations and tokenisation, taken from the task's train split.

Loading is in two steps so that data mistakes surface before a model loads: :func:`load_docs`
builds the lm-eval tasks and their train docs and checks every p (no tokenizer needed), then
:func:`build_examples` encodes them with the model's tokenizer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from distjudge_eval.distributions import plurality_target
from distjudge_eval.errors import UserError
from distjudge_eval.readout import EncodedItem, encode_item, truncate

P_SUM_TOL = 1e-6


@dataclass
class TrainExample:
    item: EncodedItem
    p: list[float]
    target: list[float]  # plurality label as a distribution (ties split)
    item_id: str


@dataclass
class TaskDocs:
    """One lm-eval task and docs of one of its splits (capped, p checked)."""

    name: str
    task: Any
    docs: list[dict]


def load_tasks(
    spec: str, user_paths: Sequence[str] = (), data_dir: str | None = None
) -> dict[str, Any]:
    """Tasks named by ``spec``: one task, a comma-separated list, or a group (flattened), so
    e.g. ``distjudge_summeval`` trains one judge on all four SummEval dimensions.
    ``user_paths`` are the user's own task folders (``--include_path``); ``data_dir`` reaches
    the tasks as lm-eval metadata, as ``distjudge eval --data_dir`` does (None: the default)."""
    from distjudge_eval.task_names import task_manager
    from distjudge_trainer.parsing import INCLUDE_DEFAULT_TASKS

    names = [n.strip() for n in spec.split(",") if n.strip()]
    metadata = {"data_dir": data_dir} if data_dir else None
    found = dict(task_manager(user_paths, INCLUDE_DEFAULT_TASKS, metadata).load(names)["tasks"])
    if not found:
        raise UserError(f"no tasks found for {spec!r}")
    return found


def load_task(task_name: str, user_paths: Sequence[str] = (), data_dir: str | None = None) -> Any:
    tasks = load_tasks(task_name, user_paths, data_dir)
    if len(tasks) != 1:
        raise UserError(f"{task_name} names {len(tasks)} tasks; expected one")
    return next(iter(tasks.values()))


SPLITS = ("train", "test")


def load_docs(
    spec: str,
    max_items: int | None = None,
    user_paths: Sequence[str] = (),
    data_dir: str | None = None,
    split: str = "train",
) -> list[TaskDocs]:
    """Docs of one split of every task in ``spec`` (``max_items`` caps each), with p checked.

    ``split`` is ``train`` (what training fits) or ``test`` (what ``distjudge eval`` scores).
    Needs no model or tokenizer, so a missing data file, an unknown label set or a bad p fails
    here, in seconds. All tasks must share one label count: a batch stacks their distributions.
    """
    loaded = [
        split_docs(name, task, split, max_items)
        for name, task in load_tasks(spec, user_paths, data_dir).items()
    ]
    sizes = {len(td.docs[0]["p"]) for td in loaded}
    if len(sizes) > 1:
        raise UserError(f"{spec}: tasks have different label counts {sorted(sizes)}")
    return loaded


def split_docs(name: str, task: Any, split: str, max_items: int | None = None) -> TaskDocs:
    """The first ``max_items`` docs of one task's ``split`` (all when None), every p checked."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if task.OUTPUT_TYPE != "multiple_choice":
        raise UserError(
            f"{name} is a {task.OUTPUT_TYPE} task; distjudge train needs label "
            "log-likelihoods (multiple_choice); verbalized tasks train with distjudge sft/grpo"
        )
    # test: the docs the harness scores (lm-eval's eval_docs: the test split, else validation)
    docs = list((task.training_docs() if split == "train" else task.eval_docs) or [])
    docs = docs if max_items is None else docs[:max_items]
    if not docs:
        raise UserError(
            f"{name}: no {split}-split items to " + ("train on" if split == "train" else "score")
        )
    for doc in docs:
        check_p(doc.get("p"), len(task.doc_to_choice(doc)), f"{name}/{doc.get('id')}")
    return TaskDocs(name, task, docs)


def eval_docs(trained: list[TaskDocs], n_items: int) -> dict[str, list[TaskDocs]]:
    """What ``--eval_items N`` scores at each evaluation: per task, the first N of the docs
    being trained on (so ``train`` measures fit to trained items even under
    ``--max_train_items``) and the first N test-split docs."""
    return {
        "train": [TaskDocs(td.name, td.task, td.docs[:n_items]) for td in trained],
        "test": [split_docs(td.name, td.task, "test", n_items) for td in trained],
    }


def check_p(p: Any, n_labels: int, item: str) -> None:
    """The human distribution of one item, as training needs it: one finite non-negative
    entry per label, summing to 1 within 1e-6. A p that is all zeros or sums to 2 would train
    silently toward a non-distribution, so it is refused, naming the item."""
    if p is None:
        raise UserError(f"item {item}: no 'p' field (the human label distribution)")
    arr = np.asarray(p, dtype=np.float64)
    if arr.shape != (n_labels,):
        raise UserError(f"item {item}: p has {arr.size} entries but the task has {n_labels} labels")
    if not np.isfinite(arr).all() or (arr < 0).any():
        raise UserError(f"item {item}: p = {arr.tolist()} has a negative or non-finite entry")
    if abs(arr.sum() - 1.0) > P_SUM_TOL:
        raise UserError(f"item {item}: p = {arr.tolist()} sums to {arr.sum():.6g}, not 1")


def build_examples(
    source: str | list[TaskDocs],
    tokenizer: Any,
    max_items: int | None = None,
    apply_chat_template: bool = False,
    max_length: int = 8192,
    user_paths: Sequence[str] = (),
    data_dir: str | None = None,
) -> list[TrainExample]:
    """(prompt, label continuations) exactly as lm-eval builds the requests, for train docs.

    ``source`` is a task spec (see :func:`load_tasks`; ``max_items`` caps each task) or the
    output of :func:`load_docs`.
    """
    if isinstance(source, str):
        loaded = load_docs(source, max_items, user_paths, data_dir)
    else:
        loaded = source
    chat = chat_fn(tokenizer) if apply_chat_template else None

    def encode(text: str) -> list[int]:
        return tokenizer.encode(text)

    examples: list[TrainExample] = []
    for td in loaded:
        examples += _task_examples(
            td.name, td.task, td.docs, encode, chat, apply_chat_template, max_length
        )
    return examples


def _task_examples(
    task_name: str,
    task: Any,
    docs: list[dict],
    encode: Any,
    chat: Any,
    apply_chat_template: bool,
    max_length: int,
) -> list[TrainExample]:
    examples = []
    for doc in docs:
        ctx = task.fewshot_context(
            doc, 0, apply_chat_template=apply_chat_template, chat_template=chat
        )
        requests = task.construct_requests(
            doc, ctx, metadata=(task_name, 0, 1), apply_chat_template=apply_chat_template
        )
        context = requests[0].args[0]
        continuations = [r.args[1] for r in requests]
        item_id = f"{task_name}/{doc['id']}"
        check_p(doc["p"], len(continuations), item_id)
        item = truncate(encode_item(encode, context, continuations), max_length)
        examples.append(
            TrainExample(item, list(doc["p"]), plurality_target(doc["p"]).tolist(), item_id)
        )
    return examples


def chat_fn(tokenizer: Any):
    """The chat templating lm-eval's HF backend uses (a generation prefix continues the
    assistant turn), so trained prompts equal evaluated ones."""

    def apply(history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        return tokenizer.apply_chat_template(
            history,
            tokenize=False,
            add_generation_prompt=add_generation_prompt,
            continue_final_message=not add_generation_prompt,
        )

    return apply


def collate(batch: list[TrainExample]) -> dict[str, Any]:
    return {
        "items": [ex.item for ex in batch],
        "p": torch.tensor([ex.p for ex in batch], dtype=torch.float32),
        "target": torch.tensor([ex.target for ex in batch], dtype=torch.float32),
    }
