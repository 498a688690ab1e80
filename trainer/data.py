"""Training examples from the same lm-eval task the harness evaluates: same prompts, labels,
continuations and tokenisation, taken from the task's train split."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from distjudge_eval.distributions import plurality_target
from distjudge_eval.readout import EncodedItem, encode_item, truncate


@dataclass
class TrainExample:
    item: EncodedItem
    p: list[float]
    target: list[float]  # plurality label as a distribution (ties split)
    item_id: str


def load_task(task_name: str) -> Any:
    from lm_eval.tasks import TaskManager, get_task_dict

    from distjudge_eval.paths import tasks_dir

    manager = TaskManager(include_path=str(tasks_dir()))
    tasks = get_task_dict([task_name], manager)
    if task_name not in tasks:
        raise ValueError(f"{task_name} is a group: train on one task at a time")
    return tasks[task_name]


def build_examples(
    task_name: str,
    tokenizer: Any,
    max_items: int | None = None,
    apply_chat_template: bool = False,
    max_length: int = 8192,
) -> list[TrainExample]:
    """(prompt, label continuations) exactly as lm-eval builds the requests, for train docs."""
    task = load_task(task_name)
    docs = list(task.training_docs())
    if max_items is not None:
        docs = docs[:max_items]
    chat = _chat_fn(tokenizer) if apply_chat_template else None

    def encode(text: str) -> list[int]:
        return tokenizer.encode(text)

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
        item = truncate(encode_item(encode, context, continuations), max_length)
        examples.append(
            TrainExample(item, list(doc["p"]), plurality_target(doc["p"]).tolist(), str(doc["id"]))
        )
    return examples


def _chat_fn(tokenizer: Any):
    def apply(history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        return tokenizer.apply_chat_template(
            history, tokenize=False, add_generation_prompt=add_generation_prompt
        )

    return apply


def collate(batch: list[TrainExample]) -> dict[str, Any]:
    return {
        "items": [ex.item for ex in batch],
        "p": torch.tensor([ex.p for ex in batch], dtype=torch.float32),
        "target": torch.tensor([ex.target for ex in batch], dtype=torch.float32),
    }
