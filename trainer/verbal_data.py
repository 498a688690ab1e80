"""Prompts for verbalized judges, from the same lm-eval tasks the harness scores.

Each train-split item gives its prompt exactly as lm-eval builds it (generation prefix included).
Two kinds of verbalized task, told apart by the task's reading of the reply:

* pairwise (``process_results_binary``: the judge writes ``<prob>P(B better)</prob>``), in the
  original slot order and, with swap augmentation, in the swapped order from the task's
  ``_swapped`` twin. SFT target: the human P(B ≻ A) (ties count half). GRPO: one human vote
  per item, drawn with a fixed seed: y = 1 if B won, 0 if A won; a tie vote is dropped
  (counted) or, with ``ties=half``, y = 0.5. The swapped prompt gets 1 − y.
* label tasks (e.g. ``distjudge_snli_verbalized``: the judge writes ``label: x`` for every
  label). SFT target: the human p written in the form the prompt asks for. GRPO: one human vote
  per item, drawn with a fixed seed: y = the index of its label.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from distjudge_eval.errors import UserError
from distjudge_eval.labels import LabelSet
from distjudge_eval.pairwise import binary_target
from distjudge_eval.position_bias import SWAPPED
from distjudge_eval.seeding import stable_hash
from distjudge_trainer.data import TaskDocs, chat_fn, check_p, load_task

logger = logging.getLogger("distjudge")


@dataclass
class VerbalPrompt:
    prompt: str
    prob_b: float | None  # pairwise: human P(B better) in this prompt's slot order; else None
    votes: list[int]  # vote counts per label ((A, B, tie) in this prompt's slot order)
    item_id: str
    swapped: bool
    p: list[float] | None = None  # label tasks: the human distribution over the labels


def verbal_label_set(task: Any) -> LabelSet | None:
    """None for a pairwise task read as one ``<prob>`` (its own ``process_results_binary``);
    otherwise the labels the judge writes a distribution over."""
    own = getattr(task, "_own_process_results", None)
    binary = "distjudge_eval.verbalized.process_results_binary"
    if own is not None and f"{own.__module__}.{own.__qualname__}" == binary:
        return None
    return task.label_set


def load_verbal_docs(
    task_name: str,
    swap_augment: bool = True,
    user_paths: Sequence[str] = (),
    data_dir: str | None = None,
) -> list[TaskDocs]:
    """The verbalized task (and, pairwise, its ``_swapped`` twin) with every train doc's p and
    votes checked; needs no tokenizer, so data mistakes fail before a model loads."""
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
        label_set = verbal_label_set(task)
        n = 3 if label_set is None else len(label_set)
        for doc in docs:
            item = f"{name}/{doc.get('id')}"
            if len(doc.get("p") or []) != n:
                what = "a pairwise (A, B, tie)" if label_set is None else f"a {n}-label"
                raise UserError(f"{name}: expected {what} distribution p (item {item})")
            check_p(doc.get("p"), n, item)
            check_votes(doc.get("votes"), item, label_set)
        loaded.append(TaskDocs(name, task, docs))
    return loaded


def check_votes(votes: Any, item: str, label_set: LabelSet | None = None) -> None:
    """GRPO draws one vote per item: counts per label ((A, B, tie) for a pairwise task),
    non-negative, at least one vote."""
    n = 3 if label_set is None else len(label_set)
    names = "(A, B, tie)" if label_set is None else f"({', '.join(label_set.labels)})"
    arr = np.asarray(votes if votes is not None else [], dtype=np.float64)
    if arr.shape != (n,) or not np.isfinite(arr).all() or (arr < 0).any() or arr.sum() <= 0:
        raise UserError(f"item {item}: votes = {arr.tolist()} are not {names} vote counts")


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
        pairwise = verbal_label_set(td.task) is None
        for doc, prompt, kwargs in task_prompts(td, tokenizer, apply_chat_template):
            if max_prompt_tokens is not None and len(tokenizer.encode(prompt)) > max_prompt_tokens:
                too_long.add(str(doc["id"]))
                continue
            prompts.append(
                VerbalPrompt(
                    prompt=prompt,
                    prob_b=binary_target(doc["p"])[1] if pairwise else None,
                    votes=list(doc["votes"]),
                    item_id=str(doc["id"]),
                    swapped=td.name.endswith(SWAPPED),
                    p=None if pairwise else [float(x) for x in doc["p"]],
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
    vote = sparse_vote(votes, item_id, seed)  # (A, B, tie): index 2 is a tie
    if vote == 2:
        return None if ties == "drop" else 0.5
    return float(vote)


def sparse_vote(votes: list[int], item_id: str, seed: int) -> int:
    """One vote drawn from an item's vote counts (fixed per item and seed): its label index."""
    rng = np.random.default_rng(stable_hash(seed, item_id))
    counts = np.asarray(votes, dtype=np.float64)
    return int(rng.choice(len(counts), p=counts / counts.sum()))


def sparse_dataset(
    prompts: list[VerbalPrompt], seed: int, ties: str
) -> tuple[list[dict[str, Any]], int]:
    """GRPO rows {prompt, y, id}. Pairwise: y = 1 if B won (the swapped prompt of an item gets
    the same vote, flipped); label tasks: y = the drawn label's index (``ties`` unused).

    Returns the rows and the number of prompts dropped because their vote was a tie.
    """
    rows, dropped = [], 0
    for vp in prompts:
        if vp.prob_b is None:
            rows.append({"prompt": vp.prompt, "y": sparse_vote(vp.votes, vp.item_id, seed),
                         "id": vp.item_id})  # fmt: skip
            continue
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
