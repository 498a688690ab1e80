"""q from a causal LM: per-label log-likelihoods with the prompt run once per item.

The harness (``hf-judge``) and the trainer both call :func:`label_scores`, so the evaluated
quantity and the trained quantity are the same numbers. Everything is differentiable.

Two modes:

``full``
    score_k = log P(label_k's tokens | prompt), the number lm-eval's stock ``hf`` model computes.
    One forward pass per batch: each row packs the prompt and every label's tokens behind it,
    with an attention mask that lets each label see the prompt and its own earlier tokens only
    (a shared-prefix tree), and position ids that restart after the prompt for every label. Cost
    grows with prompt length + label lengths, not with K × prompt length, and the vocabulary
    projection is paid only where a label token is scored. The prompt prefix that all items of a
    batch share (the task's instructions) runs once per batch, or once per task with a
    :class:`PrefixCache`.

``first_token``
    score_k = log Σ_{t ∈ T_k} P(t | prompt), where T_k holds the first token of every surface
    variant of label k (case, with and without a leading space, declared synonyms). This is how
    judges are usually read. Which label a token stands for is decided on its text by the one
    policy in ``distjudge_eval.label_match`` (the API backend uses it too): a token that stands
    for no single label is dropped, and a label left with no token is an error.

q = softmax over the K scores in either mode.
"""

from __future__ import annotations

import copy
import inspect
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from distjudge_eval.label_match import (  # noqa: F401  (first_token_sets etc. re-exported)
    FirstTokenSets,
    first_token_sets,
    surface_variants,
)

logger = logging.getLogger("distjudge")

Mode = Literal["full", "first_token"]
MODES: tuple[str, ...] = ("full", "first_token")


@dataclass(frozen=True)
class EncodedItem:
    """Token ids of one prompt and of each label continuation, split as lm-eval splits them."""

    context: list[int]
    continuations: list[list[int]]


def encode_item(
    encode: Callable[[str], list[int]], context: str, continuations: Sequence[str]
) -> EncodedItem:
    """lm-eval's causal split: trailing spaces of the context move to the continuation, the
    whole string is encoded, and the continuation is what follows the context's own encoding."""
    context_ids = encode(context.rstrip())
    conts = [encode(context + cont)[len(context_ids) :] for cont in continuations]
    if any(not c for c in conts):
        raise ValueError(f"a continuation encodes to no tokens: {list(continuations)!r}")
    return EncodedItem(context_ids, conts)


@dataclass
class Readout:
    """Per-label scores [B, K] (log-likelihoods or log first-token mass) and greedy flags."""

    scores: torch.Tensor
    is_greedy: torch.Tensor

    @property
    def log_q(self) -> torch.Tensor:
        return torch.log_softmax(self.scores, dim=-1)


def truncate(item: EncodedItem, max_length: int) -> EncodedItem:
    """Keep the prompt's last tokens so prompt + longest label fits in ``max_length``+1 tokens,
    as lm-eval keeps the last ``max_length`` input tokens."""
    longest = max(len(c) for c in item.continuations)
    room = max_length + 1 - longest
    if len(item.context) <= room:
        return item
    if room < 1:
        raise ValueError(f"a label of {longest} tokens does not fit in max_length={max_length}")
    return EncodedItem(item.context[-room:], item.continuations)


def pad_token_id(tokenizer: Any) -> int:
    """Padding id for packed rows (its value never matters: padded positions are masked)."""
    if tokenizer is None:
        return 0
    pad = tokenizer.pad_token_id
    return int(pad if pad is not None else (tokenizer.eos_token_id or 0))


def _cache_kwarg(model: Any) -> str:
    """transformers renamed ``past_key_values`` to ``cache`` in forward(); use what it takes."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def _run_prefix(model: Any, ids: torch.Tensor) -> Any:
    """The KV cache after a prefix (``cache`` in new transformers, ``past_key_values`` before)."""
    out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
    cache = out.get("cache") if "cache" in out else None
    return cache if cache is not None else out["past_key_values"]


def common_prefix_length(contexts: Sequence[Sequence[int]]) -> int:
    """Tokens every context starts with, leaving each at least its own last token."""
    first, limit = contexts[0], min(len(c) for c in contexts) - 1
    n = 0
    while n < limit and all(c[n] == first[n] for c in contexts):
        n += 1
    return n


class PrefixCache:
    """The KV cache of a prompt prefix shared by many items (a task's instructions), kept across
    batches at inference time so the shared prefix runs once per task instead of once per item.

    Only for frozen weights (evaluation): it is filled under ``torch.no_grad``.
    """

    def __init__(self) -> None:
        self._key: tuple[int, ...] | None = None
        self._cache: Any = None

    def get(self, model: Any, prefix: Sequence[int], device: torch.device) -> Any:
        key = (id(model), *prefix)
        if key != self._key:
            with torch.no_grad():
                ids = torch.tensor([list(prefix)], device=device)
                self._cache = _run_prefix(model, ids)
            self._key = key
        return copy.deepcopy(self._cache)


def label_scores(
    model: Any,
    items: Sequence[EncodedItem],
    mode: Mode = "full",
    first_tokens: Sequence[Sequence[int]] | None = None,
    pad_id: int = 0,
    prefix: Sequence[int] | None = None,
    prefix_cache: PrefixCache | None = None,
) -> Readout:
    """Scores for a batch of items that share the number of labels K.

    ``first_tokens`` (``first_token`` mode): per label, the token ids whose probabilities are
    summed; build it with :func:`first_token_sets`. ``prefix``: tokens all contexts start with,
    run once for the batch (default: their longest common prefix); with ``prefix_cache`` its KV
    cache is also reused across batches (inference only).
    """
    if mode not in MODES:
        raise ValueError(f"unknown readout mode {mode!r}: expected one of {MODES}")
    k = len(items[0].continuations)
    if any(len(it.continuations) != k for it in items):
        raise ValueError("every item in a readout batch needs the same number of labels")
    if mode == "first_token" and (first_tokens is None or len(first_tokens) != k):
        raise ValueError("first_token mode needs one token-id set per label")
    config = getattr(model, "module", model).config  # DDP wraps the model in .module
    attn = getattr(config, "_attn_implementation", "sdpa")
    if attn not in ("sdpa", "eager"):
        raise ValueError(
            f"the readout packs labels with a custom attention mask, which needs "
            f"attn_implementation 'sdpa' or 'eager' (model uses {attn!r})"
        )
    device = next(model.parameters()).device
    contexts = [it.context for it in items]
    if prefix is None:
        prefix = contexts[0][: common_prefix_length(contexts)]
    elif any(list(c[: len(prefix)]) != list(prefix) or len(c) <= len(prefix) for c in contexts):
        raise ValueError("every context must start with the given prefix and extend past it")

    packed = _pack(items, len(prefix), with_tails=mode == "full", pad_id=pad_id)
    cache = None
    if prefix:
        if prefix_cache is not None:
            cache = prefix_cache.get(model, prefix, device)
        else:
            ids = torch.tensor([list(prefix)], device=device)
            cache = _run_prefix(model, ids)
        cache.batch_repeat_interleave(len(items))
    dtype = next(model.parameters()).dtype
    mask_dtype = dtype if dtype.is_floating_point else torch.float32
    out = model(
        input_ids=packed.ids.to(device),
        attention_mask=packed.additive_mask(mask_dtype).to(device),
        position_ids=packed.positions.to(device),
        **{_cache_kwarg(model): cache},
        logits_to_keep=packed.keep.to(device),
        use_cache=False,
    )
    logprobs = torch.log_softmax(out.logits.float(), dim=-1)  # [B, 1 + Σ T_k, V]
    if mode == "first_token":
        last = logprobs[:, 0]
        scores = torch.stack(
            [torch.logsumexp(last[:, list(ids)], dim=-1) for ids in first_tokens], dim=-1
        )
        top = last.argmax(-1, keepdim=True)
        greedy = torch.stack(
            [(top == torch.tensor(list(ids), device=device)).any(-1) for ids in first_tokens],
            dim=-1,
        )
        return Readout(scores, greedy)
    return _gather_label_logprobs(logprobs, items, packed)


@dataclass(frozen=True)
class _PackedBatch:
    """What follows the shared prefix, packed one row per item (a tree of label branches).

    Row layout: ``[left padding | rest of the prompt | tail of label 0 | tail of label 1 | ...]``;
    label k's tail (its tokens but the last, which is only predicted) sits in the same columns
    in every row, right-padded to the longest tail of label k in the batch. Each label sees the
    prefix, its prompt and its own earlier tokens; its positions restart after the prompt.
    """

    ids: torch.Tensor  # [B, S]
    positions: torch.Tensor  # [B, S]
    allowed: torch.Tensor  # [B, S, P + S] bool: query may attend key
    keep: torch.Tensor  # columns whose logits are needed: the prompt's last, then every tail
    width: int  # prompts end at column width - 1
    offsets: list[int]  # first column of each label's tail

    def additive_mask(self, dtype: torch.dtype) -> torch.Tensor:
        zeros = torch.zeros(self.allowed.shape, dtype=dtype)
        return zeros.masked_fill(~self.allowed, torch.finfo(dtype).min)[:, None]


def _pack(
    items: Sequence[EncodedItem], prefix_len: int, with_tails: bool, pad_id: int
) -> _PackedBatch:
    batch, k = len(items), len(items[0].continuations)
    rests = [it.context[prefix_len:] for it in items]
    width = max(len(r) for r in rests)
    tails = [
        max(len(it.continuations[j]) - 1 for it in items) if with_tails else 0 for j in range(k)
    ]
    offsets = [width + sum(tails[:j]) for j in range(k)]
    total = width + sum(tails)
    ids = torch.full((batch, total), pad_id, dtype=torch.long)
    valid = torch.zeros((batch, total), dtype=torch.bool)
    positions = torch.zeros((batch, total), dtype=torch.long)
    segment = torch.full((total,), -1, dtype=torch.long)
    for j in range(k):
        segment[offsets[j] : offsets[j] + tails[j]] = j
    for b, (it, rest) in enumerate(zip(items, rests)):
        n = len(rest)
        ids[b, width - n : width] = torch.tensor(rest, dtype=torch.long)
        valid[b, width - n : width] = True
        positions[b, width - n : width] = prefix_len + torch.arange(n)
        for j in range(k if with_tails else 0):
            m = len(it.continuations[j]) - 1
            ids[b, offsets[j] : offsets[j] + m] = torch.tensor(
                it.continuations[j][:-1], dtype=torch.long
            )
            valid[b, offsets[j] : offsets[j] + m] = True
            positions[b, offsets[j] : offsets[j] + tails[j]] = (
                prefix_len + len(it.context[prefix_len:]) + torch.arange(tails[j])
            )
    col = torch.arange(total)
    causal = col[None, :] <= col[:, None]  # [q, kv]
    same_branch = (segment[None, :] == -1) | (segment[None, :] == segment[:, None])
    allowed = valid[:, None, :] & (causal & same_branch)[None]
    allowed |= torch.eye(total, dtype=torch.bool)[None]  # padding rows see themselves: no NaN
    prefix_cols = torch.ones((batch, total, prefix_len), dtype=torch.bool)
    keep = torch.cat([torch.tensor([width - 1]), torch.arange(width, total)])
    return _PackedBatch(
        ids, positions, torch.cat([prefix_cols, allowed], dim=-1), keep, width, offsets
    )


def _gather_label_logprobs(
    logprobs: torch.Tensor, items: Sequence[EncodedItem], packed: _PackedBatch
) -> Readout:
    device = logprobs.device
    argmax = logprobs.argmax(-1)
    scores, greedy = [], []
    for b, it in enumerate(items):
        row_scores, row_greedy = [], []
        for j, cont in enumerate(it.continuations):
            # kept column 0 predicts every label's first token; tail token t of label j sits in
            # kept column offset_j - width + 1 + t and predicts token t + 1.
            base = packed.offsets[j] - packed.width + 1
            idx = torch.tensor([0, *range(base, base + len(cont) - 1)], device=device)
            target = torch.tensor(cont, device=device)
            row_scores.append(logprobs[b, idx, target].sum())
            row_greedy.append(bool((argmax[b, idx] == target).all()))
        scores.append(torch.stack(row_scores))
        greedy.append(row_greedy)
    return Readout(torch.stack(scores), torch.tensor(greedy, device=device))


def label_first_tokens(
    encode: Callable[[str], list[int]], continuations: Sequence[str]
) -> list[list[int]]:
    """First-token sets for an item's label continuations, with the synonyms of the label set
    that declares these labels (``distjudge_eval.labels``). ``encode`` adds no special tokens."""
    from distjudge_eval.labels import declared_synonyms

    labels = [c.strip() for c in continuations]
    sets = first_token_sets(encode, labels, declared_synonyms(labels))
    if sets.dropped:
        logger.warning(
            "first_token readout: token ids %s stand for no single label; dropped",
            {t: owners for t, owners in sets.dropped.items()},
        )
    return sets.token_ids
