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


def load_tasks(spec: str) -> dict[str, Any]:
    """Tasks named by ``spec``: one task, a comma-separated list, or a group (flattened), so
    e.g. ``distjudge_summeval`` trains one judge on all four SummEval dimensions."""
    from lm_eval.tasks import TaskManager, get_task_dict

    from distjudge_eval.paths import tasks_dir

    manager = TaskManager(include_path=str(tasks_dir()))
    names = [n.strip() for n in spec.split(",") if n.strip()]
    found: dict[str, Any] = {}

    def flatten(tree: dict) -> None:
        for key, value in tree.items():
            if isinstance(value, dict):
                flatten(value)
            else:
                found[getattr(key, "group_name", key) if not isinstance(key, str) else key] = value

    flatten(get_task_dict(names, manager))
    if not found:
        raise ValueError(f"no tasks found for {spec!r}")
    return found


def load_task(task_name: str) -> Any:
    tasks = load_tasks(task_name)
    if len(tasks) != 1:
        raise ValueError(f"{task_name} names {len(tasks)} tasks; expected one")
    return next(iter(tasks.values()))


def build_examples(
    task_name: str,
    tokenizer: Any,
    max_items: int | None = None,
    apply_chat_template: bool = False,
    max_length: int = 8192,
) -> list[TrainExample]:
    """(prompt, label continuations) exactly as lm-eval builds the requests, for train docs.

    ``task_name`` may name several tasks (see :func:`load_tasks`); ``max_items`` caps each.
    All of them must share one label count, since a batch stacks their distributions.
    """
    chat = chat_fn(tokenizer) if apply_chat_template else None

    def encode(text: str) -> list[int]:
        return tokenizer.encode(text)

    examples: list[TrainExample] = []
    for name, task in load_tasks(task_name).items():
        docs = list(task.training_docs())
        if max_items is not None:
            docs = docs[:max_items]
        examples += _task_examples(name, task, docs, encode, chat, apply_chat_template, max_length)
    sizes = {len(ex.p) for ex in examples}
    if len(sizes) > 1:
        raise ValueError(f"{task_name}: tasks have different label counts {sorted(sizes)}")
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
        item = truncate(encode_item(encode, context, continuations), max_length)
        examples.append(
            TrainExample(
                item,
                list(doc["p"]),
                plurality_target(doc["p"]).tolist(),
                f"{task_name}/{doc['id']}",
            )
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
