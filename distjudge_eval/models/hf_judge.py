"""``hf-judge``: lm-eval's HF model with the distjudge readout for multiple-choice items.

Stock ``hf`` scores each (prompt, label) request on its own. ``hf-judge`` groups the requests of
an item (same prompt), runs the prompt once with every label packed behind it, and runs the
instructions that all items of a task share once per task. Same model_args as ``hf``, plus:

- ``readout``: ``full`` (default; the numbers stock ``hf`` computes) or ``first_token``.
- ``prefix_cache``: reuse the KV cache of the task's shared prompt prefix (default True).
- ``max_batch_tokens``: cap on packed tokens per batch (rows × row length), so long prompts
  (SummEval articles) get small batches and short ones large (default 16384).

``batch_size`` caps items per batch; ``auto`` leaves sizing to ``max_batch_tokens``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from tqdm import tqdm

from distjudge_eval.readout import (
    MODES,
    EncodedItem,
    PrefixCache,
    common_prefix_length,
    encode_item,
    label_first_tokens,
    label_scores,
    pad_token_id,
    truncate,
)

AUTO_MAX_ITEMS = 64


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


@register_model("hf-judge")
class HFJudgeLM(HFLM):
    def __init__(
        self,
        *args: Any,
        readout: str = "full",
        prefix_cache: bool | str = True,
        max_batch_tokens: int | str = 16384,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if readout not in MODES:
            raise ValueError(f"hf-judge readout must be one of {MODES}, got {readout!r}")
        self.readout_mode = readout
        self.use_prefix_cache = _as_bool(prefix_cache)
        self.max_batch_tokens = int(max_batch_tokens)
        self._prefix_cache = PrefixCache()

    # -- lm-eval entry point -------------------------------------------------------------
    def loglikelihood(
        self, requests: list[Any], disable_tqdm: bool = False
    ) -> list[tuple[float, bool]]:
        """Group an item's label requests by prompt, score them together, keep request order."""
        results: list[tuple[float, bool] | None] = [None] * len(requests)
        by_task: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
        fallback = []
        for i, req in enumerate(requests):
            context = req.args[0]
            if not context:  # unconditional scoring: nothing to share, stock path
                fallback.append(i)
                continue
            by_task[getattr(req, "task_name", None) or ""][context].append(i)
        if fallback:
            stock = super().loglikelihood([requests[i] for i in fallback], disable_tqdm=True)
            for i, res in zip(fallback, stock):
                results[i] = res

        n_items = sum(len(groups) for groups in by_task.values())
        bar = tqdm(total=n_items, disable=disable_tqdm or self.rank != 0, desc="hf-judge readout")
        for groups in by_task.values():
            self._score_task(requests, groups, results, bar)
        bar.close()
        assert all(r is not None for r in results)
        return results  # type: ignore[return-value]

    # -- internals ----------------------------------------------------------------------
    def _score_task(
        self,
        requests: list[Any],
        groups: dict[str, list[int]],
        results: list[tuple[float, bool] | None],
        bar: tqdm,
    ) -> None:
        entries = []
        for context, idx in groups.items():
            conts = [requests[i].args[1] for i in idx]
            item = truncate(encode_item(self.tok_encode, context, conts), self.max_length)
            entries.append((item, idx, conts))
        # Items of one task with the same label count share the task's instruction prefix.
        by_k: dict[int, list[tuple[EncodedItem, list[int], list[str]]]] = defaultdict(list)
        for entry in entries:
            by_k[len(entry[1])].append(entry)
        for same_k in by_k.values():
            contexts = [e[0].context for e in same_k]
            prefix = (
                contexts[0][: common_prefix_length(contexts)] if self.use_prefix_cache else None
            )
            first_tokens = self._first_tokens(same_k[0][2]) if self.readout_mode != "full" else None
            same_k.sort(key=lambda e: -len(e[0].context))
            for batch in self._batches(same_k, len(prefix or ())):
                with torch.no_grad():
                    out = label_scores(
                        self.model,
                        [e[0] for e in batch],
                        mode=self.readout_mode,  # type: ignore[arg-type]
                        first_tokens=first_tokens,
                        pad_id=pad_token_id(self.tokenizer),
                        prefix=prefix,
                        prefix_cache=self._prefix_cache if prefix else None,
                    )
                scores, greedy = out.scores.tolist(), out.is_greedy.tolist()
                for row, (_, idx, _) in enumerate(batch):
                    for col, i in enumerate(idx):
                        results[i] = (float(scores[row][col]), bool(greedy[row][col]))
                        self.cache_hook.add_partial("loglikelihood", requests[i].args, results[i])
                bar.update(len(batch))

    def _batches(self, entries: list, prefix_len: int):
        """Items in descending length, cut where rows × row length passes the token budget."""
        cap = self.batch_size if isinstance(self.batch_size, int) else AUTO_MAX_ITEMS
        batch: list = []
        width = 0
        for entry in entries:
            item = entry[0]
            row = len(item.context) - prefix_len + sum(len(c) - 1 for c in item.continuations)
            grown = max(width, row)
            if batch and (len(batch) >= cap or (len(batch) + 1) * grown > self.max_batch_tokens):
                yield batch
                batch, grown = [], row
            batch.append(entry)
            width = grown
        if batch:
            yield batch

    def _first_tokens(self, continuations: list[str]) -> list[list[int]]:
        return label_first_tokens(
            lambda s: self.tokenizer.encode(s, add_special_tokens=False), continuations
        )
