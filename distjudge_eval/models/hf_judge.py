"""``hf-judge``: lm-eval's HF model with the distjudge readout for multiple-choice items.

Stock ``hf`` scores each (prompt, label) request on its own. ``hf-judge`` groups the requests of
an item (same prompt), runs the prompt once with every label packed behind it, and runs the
instructions that all items of a task share once per task. Same model_args as ``hf``, plus:

- ``readout``: ``full`` (default; the numbers stock ``hf`` computes) or ``first_token``.
- ``prefix_cache``: reuse the KV cache of the task's shared prompt prefix (default True).
- ``max_batch_tokens``: cap on packed tokens per batch (rows × row length), so long prompts
  (SummEval articles) get small batches and short ones large (default 16384). This, not an item
  count, is the memory knob.
- ``max_batch_items``: a hard cap on items per batch (``max_batch_items=1``: one at a time).
- ``truncation``: what to do with a prompt too long for ``max_length``. ``left`` (default) cuts
  it from the left, as lm-eval does, and scores it; ``skip`` does not score it (the item is left
  out of every metric but ``truncated``); both warn once per task with the number of items and
  record them (:mod:`distjudge_eval.truncation`), so distjudge tasks report the count as the
  ``truncated`` metric (a task that is not distjudge's gets NaN scores for a skipped item).
  Generation (verbalized tasks) follows the same setting, with room for ``max_gen_toks``.
  ``fail`` stops before scoring with an error naming the first such item and its length.

Batch size rule. lm-eval passes ``batch_size=1`` when the user gives no ``--batch_size``, so 1
cannot mean "one item at a time" without making every default run slow. Items per batch:
``max_batch_items`` if given; else ``--batch_size N`` for N > 1; else (1, unset, ``auto``) as
many as fit ``max_batch_tokens``, at most ``--max_batch_size`` (lm-eval's cap for ``auto``,
default 64).

Any other model_args key is an error listing the valid ones. Keys that are neither ``hf``'s nor
``hf-judge``'s go to ``from_pretrained`` (as with ``hf``), so they are checked there, before the
weights load: a ``from_pretrained`` argument or a model config field passes, anything else is
a typo (stock ``hf`` would pass it on and fail in the model's constructor, or ignore it when
``pretrained`` is an already-built model).
"""

from __future__ import annotations

import inspect
import logging
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from lm_eval.models.utils import normalize_gen_kwargs
from tqdm import tqdm

from distjudge_eval import truncation as truncation_records
from distjudge_eval.errors import UserError
from distjudge_eval.library_warnings import quiet_peft_deprecation
from distjudge_eval.models.args import HARNESS_ARGS, reject_unknown, unknown_args_error
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
from distjudge_eval.settings import truthy

logger = logging.getLogger("distjudge")
AUTO_MAX_ITEMS = 64
TRUNCATION = ("left", "skip", "fail")
SKIPPED_RESULT = (float("nan"), False)  # what lm-eval gets for a skipped item's labels
OWN_ARGS = ("readout", "prefix_cache", "max_batch_tokens", "max_batch_items", "truncation")


def hflm_args() -> list[str]:
    """The keyword arguments lm-eval's ``hf`` model takes by name."""
    params = inspect.signature(HFLM.__init__).parameters.values()
    return [p.name for p in params if p.name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD]


def from_pretrained_args() -> set[str]:
    """What transformers' ``from_pretrained`` takes: named parameters and the keys it pops from
    ``**kwargs``, also the retired ones it drops quietly (``low_cpu_mem_usage``), read from its
    source so a new transformers version needs no list here."""
    from transformers import PreTrainedModel
    from transformers.models.auto.auto_factory import _BaseAutoModelClass

    names: set[str] = set()
    for fn in (PreTrainedModel.from_pretrained, _BaseAutoModelClass.from_pretrained):
        fn = inspect.unwrap(getattr(fn, "__func__", fn))
        names |= set(inspect.signature(fn).parameters)
        try:
            source = inspect.getsource(fn)
        except (OSError, TypeError):
            continue
        names |= set(re.findall(r"kwargs\.(?:pop|get)\(\s*[\"'](\w+)[\"']", source))
        for listed in re.findall(r"for \w+ in \[([^\]]*)\]", source):  # popped in a loop
            names |= set(re.findall(r"[\"'](\w+)[\"']", listed))
    return names


@dataclass
class _Entry:
    """One item: its tokens (after truncation), request indices and label strings."""

    item: EncodedItem
    idx: list[int]
    conts: list[str]
    skipped: bool = False  # too long with truncation=skip: not scored


@register_model("hf-judge")
class HFJudgeLM(HFLM):
    def __init__(
        self,
        *args: Any,
        readout: str = "full",
        prefix_cache: bool | str = True,
        max_batch_tokens: int | str = 16384,
        max_batch_items: int | str | None = None,
        truncation: str = "left",
        **kwargs: Any,
    ) -> None:
        if readout not in MODES:
            raise UserError(f"hf-judge: readout must be one of {', '.join(MODES)}, got {readout!r}")
        if truncation not in TRUNCATION:
            raise UserError(
                f"hf-judge: truncation must be left, skip or fail, got {truncation!r} (hf-judge's "
                f"own setting for over-long prompts; lm-eval's tokenizer flag of that name is "
                f"unused)"
            )
        pretrained = kwargs.get("pretrained", args[0] if args else None)
        if not isinstance(pretrained, str):  # HFLM ignores extra keys for a built model
            reject_unknown("hf-judge", kwargs, [*hflm_args(), *OWN_ARGS])
        with quiet_peft_deprecation():  # loading peft= reads a name transformers 5 deprecates
            super().__init__(*args, **kwargs)
        self._split_items_over_processes()
        self.readout_mode = readout
        self.use_prefix_cache = truthy(prefix_cache)
        self.max_batch_tokens = int(max_batch_tokens)
        self.max_batch_items = int(max_batch_items) if max_batch_items not in (None, "") else None
        self.truncation_mode = truncation
        self.truncated: dict[str, int] = {}  # task -> items cut or skipped (last call)
        self._prefix_cache = PrefixCache()

    def _create_model(self, pretrained: Any, *args: Any, **kwargs: Any) -> None:
        """Check the keys bound for ``from_pretrained`` now: the config is loaded, the weights
        are not."""
        named = set(inspect.signature(HFLM._create_model).parameters)
        extra = [k for k in kwargs if k not in named and k not in HARNESS_ARGS]
        accepted = from_pretrained_args()
        unknown = [k for k in extra if k not in accepted and not hasattr(self._config, k)]
        if unknown:
            raise unknown_args_error("hf-judge", unknown, [*hflm_args(), *OWN_ARGS])
        super()._create_model(pretrained, *args, **kwargs)

    def _split_items_over_processes(self) -> None:
        """Under ``accelerate launch`` each process scores its own share of the items.

        lm-eval's HFLM turns data parallelism on only when it sees more than one GPU, so under
        ``accelerate launch --cpu --num_processes N`` (or N processes on one GPU) every process
        would score every item and the run would cost N times one process. The evaluator shards
        docs by ``rank`` / ``world_size`` and gathers the results on rank 0, so setting them
        from the accelerator is all it takes."""
        accelerator = getattr(self, "accelerator", None)
        if accelerator is not None and accelerator.num_processes > 1 and self.world_size == 1:
            self._rank = accelerator.process_index
            self._world_size = accelerator.num_processes

    @property
    def items_per_batch(self) -> int:
        """The item cap of a batch (see "Batch size rule" in the module docstring)."""
        if self.max_batch_items:
            return max(self.max_batch_items, 1)
        if isinstance(self.batch_size, int) and self.batch_size > 1:
            return self.batch_size
        return int(self.max_batch_size or AUTO_MAX_ITEMS)

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

        # encode (and check lengths) of every task before the first forward pass
        encoded = {
            task: self._encode_task(requests, task, groups) for task, groups in by_task.items()
        }
        for entries in encoded.values():
            for entry in entries:
                if entry.skipped:  # not cached: a later run with the cache would read NaN
                    for i in entry.idx:
                        results[i] = SKIPPED_RESULT
        encoded = {task: [e for e in entries if not e.skipped] for task, entries in encoded.items()}
        n_items = sum(len(entries) for entries in encoded.values())
        bar = tqdm(total=n_items, disable=disable_tqdm or self.rank != 0, desc="hf-judge readout")
        for entries in encoded.values():
            self._score_task(requests, entries, results, bar)
        bar.close()
        assert all(r is not None for r in results)
        return results  # type: ignore[return-value]

    # -- internals ----------------------------------------------------------------------
    def _encode_task(
        self, requests: list[Any], task: str, groups: dict[str, list[int]]
    ) -> list[_Entry]:
        """Token ids of a task's items, cut to ``max_length`` or marked skipped (recorded for
        the ``truncated`` metric, warned once), or refused."""
        entries, cut = [], 0
        for context, idx in groups.items():
            conts = [requests[i].args[1] for i in idx]
            full = encode_item(self.tok_encode, context, conts)
            item = truncate(full, self.max_length)
            skipped = False
            if len(item.context) < len(full.context):
                if self.truncation_mode == "fail":
                    raise UserError(self._too_long(requests[idx[0]], task, full))
                skipped = self.truncation_mode == "skip"
                kind = truncation_records.SKIPPED if skipped else truncation_records.CUT
                truncation_records.record_request(requests[idx[0]], kind)
                cut += 1
            entries.append(_Entry(item, idx, conts, skipped))
        self._warn_over_long(task, cut, len(entries), f"max_length={self.max_length} tokens")
        return entries

    def _warn_over_long(self, task: str, cut: int, total: int, limit: str) -> None:
        """One warning per task with the count (stock hf warns once per item, or not at all)."""
        self.truncated[task] = cut
        if not cut:
            return
        done = (
            "they were not scored and count only in the truncated metric"
            if self.truncation_mode == "skip"
            else "their prompts were cut from the left"
        )
        logger.warning(
            "hf-judge: %d of %d items of %s are longer than %s; %s "
            "(truncation=fail makes this an error)",
            cut,
            total,
            task or "(no task)",
            limit,
            done,
        )

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        """Stock generation (verbalized tasks), with over-long prompts handled as in scoring.

        lm-eval keeps a prompt's last ``max_length - max_gen_toks`` tokens without a word; here
        such items are counted and recorded (``truncated`` metric), warned once per task, and
        cut (``left``), not generated (``skip``: the reply is empty) or refused (``fail``)."""
        out: list[str | None] = [None] * len(requests)
        cut: dict[str, int] = defaultdict(int)
        total: dict[str, int] = defaultdict(int)
        keep = []
        for i, req in enumerate(requests):
            context, gen_kwargs = req.args[0], req.args[1]
            task = getattr(req, "task_name", None) or ""
            total[task] += 1
            max_gen = normalize_gen_kwargs(dict(gen_kwargs), self.max_gen_toks)["max_gen_toks"]
            room = self.max_length - max_gen
            n_tokens = len(self.tok_encode(context))
            if n_tokens > room:
                if self.truncation_mode == "fail":
                    raise UserError(
                        f"hf-judge: item {getattr(req, 'doc_id', '?')} of {task or '(no task)'}:"
                        f" prompt {n_tokens} tokens + max_gen_toks {max_gen} > max_length="
                        f"{self.max_length}: use a longer-context model, set max_length= if the "
                        f"model allows more, or truncation=left to cut prompts from the left "
                        f"(truncation=skip: leave them out)"
                    )
                skipped = self.truncation_mode == "skip"
                kind = truncation_records.SKIPPED if skipped else truncation_records.CUT
                truncation_records.record_request(req, kind)
                cut[task] += 1
                if skipped:
                    out[i] = ""
                    continue
            keep.append(i)
        for task, n in total.items():
            self._warn_over_long(
                task, cut[task], n, f"max_length={self.max_length} tokens minus max_gen_toks"
            )
        replies = super().generate_until([requests[i] for i in keep], disable_tqdm) if keep else []
        for i, reply in zip(keep, replies, strict=True):
            out[i] = reply
        return out  # type: ignore[return-value]

    def _too_long(self, request: Any, task: str, item: EncodedItem) -> str:
        longest = max(len(c) for c in item.continuations)
        return (
            f"hf-judge: item {getattr(request, 'doc_id', '?')} of {task or '(no task)'}: prompt "
            f"{len(item.context)} tokens + label {longest} tokens > max_length={self.max_length}: "
            f"use a longer-context model, set max_length= if the model allows more, or "
            f"truncation=left to cut prompts from the left (truncation=skip: leave them out)"
        )

    def _score_task(
        self,
        requests: list[Any],
        entries: list[_Entry],
        results: list[tuple[float, bool] | None],
        bar: tqdm,
    ) -> None:
        # Items of one task with the same label count share the task's instruction prefix.
        by_k: dict[int, list[_Entry]] = defaultdict(list)
        for entry in entries:
            by_k[len(entry.idx)].append(entry)
        for same_k in by_k.values():
            contexts = [e.item.context for e in same_k]
            prefix = (
                contexts[0][: common_prefix_length(contexts)] if self.use_prefix_cache else None
            )
            first_tokens = (
                self._first_tokens(same_k[0].conts) if self.readout_mode != "full" else None
            )
            same_k.sort(key=lambda e: -len(e.item.context))
            for batch in self._batches(same_k, len(prefix or ())):
                with torch.no_grad():
                    out = label_scores(
                        self.model,
                        [e.item for e in batch],
                        mode=self.readout_mode,  # type: ignore[arg-type]
                        first_tokens=first_tokens,
                        pad_id=pad_token_id(self.tokenizer),
                        prefix=prefix,
                        prefix_cache=self._prefix_cache if prefix else None,
                    )
                scores, greedy = out.scores.tolist(), out.is_greedy.tolist()
                for row, entry in enumerate(batch):
                    for col, i in enumerate(entry.idx):
                        results[i] = (float(scores[row][col]), bool(greedy[row][col]))
                        self.cache_hook.add_partial("loglikelihood", requests[i].args, results[i])
                bar.update(len(batch))

    def _batches(self, entries: list[_Entry], prefix_len: int) -> Iterator[list[_Entry]]:
        """Items in descending length, cut where rows × row length passes the token budget or
        the batch holds ``items_per_batch`` items."""
        cap = self.items_per_batch
        batch: list[_Entry] = []
        width = 0
        for entry in entries:
            item = entry.item
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
