"""Prompts for verbalized pairwise judges, from the same lm-eval tasks the harness scores.

Each train-split item gives its prompt exactly as lm-eval builds it (generation prefix
``<prob>`` included) in the original slot order and, with swap augmentation, in the swapped
order from the task's ``_swapped`` twin. Targets:

* SFT (dense): the human P(B ≻ A) (ties count half), written as the judge should write it;
* GRPO (sparse): one human vote per item, drawn with a fixed seed: y = 1 if B won, 0 if A won;
  a tie vote is dropped (counted) or, with ``ties=half``, y = 0.5. The swapped prompt gets 1 − y.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from distjudge_eval.errors import UserError
from distjudge_eval.pairwise import binary_target
from distjudge_eval.position_bias import SWAPPED
from distjudge_eval.seeding import stable_hash
from distjudge_trainer.data import TaskDocs, chat_fn, check_p, load_task

logger = logging.getLogger("distjudge")


@dataclass
class VerbalPrompt:
    prompt: str
    prob_b: float  # dense human target P(B better) in this prompt's slot order
    votes: list[int]  # (A, B, tie) vote counts in this prompt's slot order
    item_id: str
    swapped: bool


def load_verbal_docs(
    task_name: str,
    swap_augment: bool = True,
    user_paths: Sequence[str] = (),
    data_dir: str | None = None,
) -> list[TaskDocs]:
    """The verbalized task (and its ``_swapped`` twin) with every train doc's p and votes
    checked; needs no tokenizer, so data mistakes fail before a model loads."""
    names = [task_name] + ([task_name + SWAPPED] if swap_augment else [])
    loaded = []
    for name in names:
        task = load_task(name, user_paths, data_dir)
        if task.OUTPUT_TYPE != "generate_until":
            raise UserError(
                f"{name} is not a verbalized (generate_until) task; label-likelihood tasks "
                "train with distjudge train"
            )
        docs = list(task.training_docs() or [])
        if not docs:
            raise UserError(f"{name}: no train-split items to train on")
        for doc in docs:
            item = f"{name}/{doc.get('id')}"
            if len(doc.get("p") or []) != 3:
                raise UserError(f"{name}: expected a pairwise (A, B, tie) task (item {item})")
            check_p(doc.get("p"), 3, item)
            check_votes(doc.get("votes"), item)
        loaded.append(TaskDocs(name, task, docs))
    return loaded


def check_votes(votes: Any, item: str) -> None:
    """GRPO draws one vote per item: (A, B, tie) counts, non-negative, at least one vote."""
    arr = np.asarray(votes if votes is not None else [], dtype=np.float64)
    if arr.shape != (3,) or not np.isfinite(arr).all() or (arr < 0).any() or arr.sum() <= 0:
        raise UserError(f"item {item}: votes = {arr.tolist()} are not (A, B, tie) vote counts")


def task_prompts(td: TaskDocs, tokenizer: Any, chat: bool) -> list:
    """(doc, prompt, generation kwargs) per train doc, as lm-eval builds the request."""
    task = td.task
    template = chat_fn(tokenizer) if chat else None
    out = []
    for doc in td.docs:
        ctx = task.fewshot_context(
            doc,
            0,
            apply_chat_template=chat,
            chat_template=template,
            gen_prefix=task.doc_to_prefix(doc),
        )
        request = task.construct_requests(doc, ctx, metadata=(td.name, 0, 1))
        request = request[0] if isinstance(request, list) else request
        out.append((doc, request.args[0], request.args[1]))
    return out


def build_prompts(
    source: str | list[TaskDocs],
    tokenizer: Any,
    max_items: int | None = None,
    apply_chat_template: bool = False,
    swap_augment: bool = True,
    max_prompt_tokens: int | None = None,
    user_paths: Sequence[str] = (),
    data_dir: str | None = None,
) -> tuple[list[VerbalPrompt], dict[str, Any]]:
    """Prompts in both slot orders (paired by item id), and the task's generation kwargs.

    ``source`` is a task name or the output of :func:`load_verbal_docs`. ``max_items`` caps
    items (each counted once, whatever the number of orders); items whose prompt is longer
    than ``max_prompt_tokens`` in either order are skipped and counted.
    """
    if isinstance(source, str):
        source = load_verbal_docs(source, swap_augment, user_paths, data_dir)
    prompts: list[VerbalPrompt] = []
    gen_kwargs: dict[str, Any] = {}
    too_long: set[str] = set()
    for td in source:
        for doc, prompt, kwargs in task_prompts(td, tokenizer, apply_chat_template):
            if max_prompt_tokens is not None and len(tokenizer.encode(prompt)) > max_prompt_tokens:
                too_long.add(str(doc["id"]))
                continue
            prompts.append(
                VerbalPrompt(
                    prompt=prompt,
                    prob_b=binary_target(doc["p"])[1],
                    votes=list(doc["votes"]),
                    item_id=str(doc["id"]),
                    swapped=td.name.endswith(SWAPPED),
                )
            )
            gen_kwargs = dict(kwargs)
    # an item counts in both orders or in neither; then the first max_items items in split order
    keep = [vp for vp in prompts if vp.item_id not in too_long]
    if max_items is not None:
        first = list(dict.fromkeys(vp.item_id for vp in keep))[:max_items]
        keep = [vp for vp in keep if vp.item_id in set(first)]
    if too_long:
        logger.warning("skipped %d train items whose prompt exceeds %d tokens", len(too_long),
                       max_prompt_tokens)  # fmt: skip
    if not keep:
        raise UserError("no train prompts left (--max_prompt_tokens too small?)")
    return keep, gen_kwargs


def sparse_label(votes: list[int], item_id: str, seed: int, ties: str) -> float | None:
    """One vote drawn from the item's votes (fixed per item and seed): 1 = B won, 0 = A won."""
    if ties not in ("drop", "half"):
        raise ValueError(f"ties must be drop or half, got {ties!r}")
    rng = np.random.default_rng(stable_hash(seed, item_id))
    counts = np.asarray(votes, dtype=np.float64)
    vote = int(rng.choice(3, p=counts / counts.sum()))
    if vote == 2:
        return None if ties == "drop" else 0.5
    return float(vote)


def sparse_dataset(
    prompts: list[VerbalPrompt], seed: int, ties: str
) -> tuple[list[dict[str, Any]], int]:
    """GRPO rows {prompt, y}; the swapped prompt of an item gets the same vote, flipped.

    Returns the rows and the number of prompts dropped because their vote was a tie.
    """
    rows, dropped = [], 0
    for vp in prompts:
        # draw in the canonical order so both orders of an item see the same vote
        canonical = [vp.votes[1], vp.votes[0], vp.votes[2]] if vp.swapped else vp.votes
        y = sparse_label(canonical, vp.item_id, seed, ties)
        if y is None:
            dropped += 1
            continue
        rows.append({"prompt": vp.prompt, "y": 1.0 - y if vp.swapped else y, "id": vp.item_id})
    if dropped:
        logger.warning("GRPO: dropped %d of %d prompts whose drawn vote was a tie", dropped,
                       len(prompts))  # fmt: skip
    return rows, dropped
