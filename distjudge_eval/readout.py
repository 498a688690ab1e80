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
    projection is paid only where a label token is scored.

``first_token``
    score_k = log Σ_{t ∈ T_k} P(t | prompt), where T_k holds the first token of every surface
    variant of label k (case, with and without a leading space, declared synonyms). This is how
    judges are usually read. A token that starts variants of two labels is ambiguous: it is
    dropped from both (see :func:`first_token_sets`), and a label left with no token is an error.

q = softmax over the K scores in either mode.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

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


def _prompt_forward(
    model: Any, contexts: Sequence[Sequence[int]], pad_id: int, device: torch.device
) -> torch.Tensor:
    """One left-padded forward over the prompts; log-probabilities at their last position."""
    width = max(len(c) for c in contexts)
    ids = torch.full((len(contexts), width), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros((len(contexts), width), dtype=torch.long, device=device)
    for i, ctx in enumerate(contexts):
        ids[i, width - len(ctx) :] = torch.tensor(ctx, device=device)
        mask[i, width - len(ctx) :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=1)
    return torch.log_softmax(out.logits[:, -1].float(), dim=-1)


def label_scores(
    model: Any,
    items: Sequence[EncodedItem],
    mode: Mode = "full",
    first_tokens: Sequence[Sequence[int]] | None = None,
    pad_id: int = 0,
) -> Readout:
    """Scores for a batch of items that share the number of labels K.

    ``first_tokens`` (mode ``first_token`` only): for each label, the token ids whose
    probabilities are summed; build it with :func:`first_token_sets`.
    """
    if mode not in MODES:
        raise ValueError(f"unknown readout mode {mode!r}: expected one of {MODES}")
    k = len(items[0].continuations)
    if any(len(it.continuations) != k for it in items):
        raise ValueError("every item in a readout batch needs the same number of labels")
    device = next(model.parameters()).device
    if mode == "full":
        return _full_scores(model, items, pad_id, device)

    if first_tokens is None or len(first_tokens) != k:
        raise ValueError("first_token mode needs one token-id set per label")
    last = _prompt_forward(model, [it.context for it in items], pad_id, device)
    scores = torch.stack(
        [torch.logsumexp(last[:, list(ids)], dim=-1) for ids in first_tokens], dim=-1
    )
    top = last.argmax(-1, keepdim=True)
    greedy = torch.stack(
        [(top == torch.tensor(list(ids), device=device)).any(-1) for ids in first_tokens], dim=-1
    )
    return Readout(scores, greedy)


@dataclass(frozen=True)
class _PackedBatch:
    """Prompt and label tails packed into one row per item (a tree of shared-prefix branches).

    Row layout: ``[left padding | prompt | tail of label 0 | tail of label 1 | ...]``; label k's
    tail (its tokens but the last, which only get predicted) sits in the same columns in every
    row, right-padded to the longest tail of label k in the batch.
    """

    ids: torch.Tensor  # [B, S]
    positions: torch.Tensor  # [B, S]
    mask: torch.Tensor  # [B, 1, S, S] additive float mask
    keep: torch.Tensor  # [1 + Σ T_k] columns whose logits are needed
    width: int  # prompt width W (prompts end at column W - 1)
    offsets: list[int]  # first column of each label's tail


def _pack(
    items: Sequence[EncodedItem], pad_id: int, device: torch.device, dtype: torch.dtype
) -> _PackedBatch:
    batch, k = len(items), len(items[0].continuations)
    width = max(len(it.context) for it in items)
    tails = [max(len(it.continuations[j]) - 1 for it in items) for j in range(k)]
    offsets = [width + sum(tails[:j]) for j in range(k)]
    total = width + sum(tails)
    ids = torch.full((batch, total), pad_id, dtype=torch.long)
    valid = torch.zeros((batch, total), dtype=torch.bool)
    positions = torch.zeros((batch, total), dtype=torch.long)
    segment = torch.full((total,), -1, dtype=torch.long)
    for j in range(k):
        segment[offsets[j] : offsets[j] + tails[j]] = j
    for b, it in enumerate(items):
        n = len(it.context)
        ids[b, width - n : width] = torch.tensor(it.context)
        valid[b, width - n : width] = True
        positions[b, width - n : width] = torch.arange(n)
        for j, cont in enumerate(it.continuations):
            m = len(cont) - 1
            cols = slice(offsets[j], offsets[j] + m)
            ids[b, cols] = torch.tensor(cont[:-1], dtype=torch.long)
            valid[b, cols] = True
            positions[b, offsets[j] : offsets[j] + tails[j]] = n + torch.arange(tails[j])
    col = torch.arange(total)
    causal = col[None, :] <= col[:, None]  # [q, kv]
    same_branch = (segment[None, :] == -1) | (segment[None, :] == segment[:, None])
    allowed = valid[:, None, :] & (causal & same_branch)[None]
    allowed |= torch.eye(total, dtype=torch.bool)[None]  # padding rows see themselves: no NaN
    mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)
    keep = torch.cat([torch.tensor([width - 1]), torch.arange(width, total)])
    return _PackedBatch(
        ids.to(device),
        positions.to(device),
        mask[:, None].to(device),
        keep.to(device),
        width,
        offsets,
    )


def _full_scores(
    model: Any, items: Sequence[EncodedItem], pad_id: int, device: torch.device
) -> Readout:
    attn = getattr(model.config, "_attn_implementation", "sdpa")
    if attn not in ("sdpa", "eager"):
        raise ValueError(
            f"full readout packs labels with a custom attention mask, which needs "
            f"attn_implementation 'sdpa' or 'eager' (model uses {attn!r})"
        )
    dtype = next(model.parameters()).dtype
    packed = _pack(items, pad_id, device, dtype if dtype.is_floating_point else torch.float32)
    out = model(
        input_ids=packed.ids,
        attention_mask=packed.mask,
        position_ids=packed.positions,
        logits_to_keep=packed.keep,
        use_cache=False,
    )
    logprobs = torch.log_softmax(out.logits.float(), dim=-1)  # [B, 1 + Σ T_k, V]
    argmax = logprobs.argmax(-1)
    scores, greedy = [], []
    for b, it in enumerate(items):
        row_scores, row_greedy = [], []
        for j, cont in enumerate(it.continuations):
            # kept column 0 predicts each label's first token; the tail column t (kept index
            # offset - width + 1 + t) predicts token t + 1.
            idx = [0] + [packed.offsets[j] - packed.width + 1 + t for t in range(len(cont) - 1)]
            idx_t = torch.tensor(idx, device=device)
            target = torch.tensor(cont, device=device)
            row_scores.append(logprobs[b, idx_t, target].sum())
            row_greedy.append(bool((argmax[b, idx_t] == target).all()))
        scores.append(torch.stack(row_scores))
        greedy.append(row_greedy)
    return Readout(torch.stack(scores), torch.tensor(greedy, device=device))


def surface_variants(label: str, synonyms: Sequence[str] = ()) -> list[str]:
    """The spellings a judge may start its answer with: case variants, ± a leading space."""
    out: list[str] = []
    for word in (label, *synonyms):
        for cased in (word, word.lower(), word.capitalize(), word.upper()):
            for spaced in (cased, " " + cased):
                if spaced not in out:
                    out.append(spaced)
    return out


@dataclass(frozen=True)
class FirstTokenSets:
    token_ids: list[list[int]]
    dropped: dict[int, list[str]]  # ambiguous token id -> labels that shared it


def first_token_sets(
    encode: Callable[[str], list[int]],
    labels: Sequence[str],
    synonyms: dict[str, Sequence[str]] | None = None,
) -> FirstTokenSets:
    """First-token ids per label; a token claimed by two labels is dropped from both.

    ``encode`` must not add special tokens. Raises when a label keeps no token, since then
    first-token q cannot tell that label apart: use ``full`` mode.
    """
    synonyms = synonyms or {}
    claims: dict[int, list[str]] = {}
    per_label: list[list[int]] = []
    for label in labels:
        ids: list[int] = []
        for variant in surface_variants(label, synonyms.get(label, ())):
            toks = encode(variant)
            if toks and toks[0] not in ids:
                ids.append(toks[0])
        per_label.append(ids)
        for t in ids:
            claims.setdefault(t, []).append(label)
    dropped = {t: owners for t, owners in claims.items() if len(owners) > 1}
    kept = [[t for t in ids if t not in dropped] for ids in per_label]
    for label, ids in zip(labels, kept):
        if not ids:
            raise ValueError(
                f"label {label!r} shares every first token with another label "
                f"({sorted(dropped)}): first_token mode cannot separate it; use mode=full"
            )
    return FirstTokenSets(kept, dropped)
