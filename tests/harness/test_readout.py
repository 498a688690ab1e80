"""The shared readout against a naive per-label computation on a small random Llama."""

from __future__ import annotations

import pytest
import torch
from tiny_models import tiny_llama
from transformers import LlamaForCausalLM

from distjudge_eval.readout import (
    EncodedItem,
    PrefixCache,
    common_prefix_length,
    encode_item,
    first_token_sets,
    label_scores,
    surface_variants,
    truncate,
)

VOCAB = 97


def tiny_model(attn: str = "sdpa", seed: int = 0) -> LlamaForCausalLM:
    return tiny_llama(VOCAB, seed, attn)


def naive_scores(model, item: EncodedItem) -> torch.Tensor:
    """One plain causal forward per label: the definition of the full readout."""
    out = []
    for cont in item.continuations:
        ids = torch.tensor([item.context + cont])
        logprobs = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)
        n = len(item.context)
        out.append(sum(logprobs[n - 1 + t, tok] for t, tok in enumerate(cont)))
    return torch.stack(out)


def random_items(n: int, k: int, seed: int, shared: int = 0) -> list[EncodedItem]:
    g = torch.Generator().manual_seed(seed)
    head = torch.randint(1, VOCAB, (shared,), generator=g).tolist()
    items = []
    for _ in range(n):
        ctx_len = int(torch.randint(3, 20, (1,), generator=g))
        ctx = head + torch.randint(1, VOCAB, (ctx_len,), generator=g).tolist()
        conts = [
            torch.randint(
                1, VOCAB, (int(torch.randint(1, 5, (1,), generator=g)),), generator=g
            ).tolist()
            for _ in range(k)
        ]
        items.append(EncodedItem(ctx, conts))
    return items


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("k", [2, 3, 5])
def test_full_mode_matches_one_forward_per_label(attn: str, k: int) -> None:
    model = tiny_model(attn)
    items = random_items(6, k, seed=k, shared=7)
    with torch.no_grad():
        got = label_scores(model, items)
        expected = torch.stack([naive_scores(model, it) for it in items])
    torch.testing.assert_close(got.scores, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got.log_q, torch.log_softmax(expected, -1), atol=1e-5, rtol=1e-5)


def test_prefix_cache_across_batches_and_explicit_prefix_agree() -> None:
    model = tiny_model()
    items = random_items(8, 3, seed=1, shared=10)
    prefix = items[0].context[: common_prefix_length([it.context for it in items])]
    assert len(prefix) >= 10
    cache = PrefixCache()
    with torch.no_grad():
        expected = torch.stack([naive_scores(model, it) for it in items])
        first = label_scores(model, items[:3], prefix=prefix, prefix_cache=cache)
        second = label_scores(model, items[3:], prefix=prefix, prefix_cache=cache)
        nothing_shared = label_scores(model, items, prefix=[])
    torch.testing.assert_close(
        torch.cat([first.scores, second.scores]), expected, atol=1e-5, rtol=0
    )
    torch.testing.assert_close(nothing_shared.scores, expected, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="prefix"):
        label_scores(model, items, prefix=[VOCAB - 1] * 50)


def test_gradients_match_the_naive_computation() -> None:
    model = tiny_model()
    items = random_items(3, 3, seed=2, shared=4)
    weights = torch.tensor([[0.2, 0.5, 0.3]])
    loss = -(label_scores(model, items).log_q * weights).sum()
    loss.backward()
    packed_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    naive = torch.stack([naive_scores(model, it) for it in items])
    (-(torch.log_softmax(naive, -1) * weights).sum()).backward()
    for got, want in zip(packed_grads, (p.grad for p in model.parameters())):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_first_token_mode_sums_the_variant_tokens() -> None:
    model = tiny_model()
    items = random_items(4, 3, seed=3, shared=5)
    sets = [[5, 9], [11], [20, 21, 22]]
    with torch.no_grad():
        got = label_scores(model, items, mode="first_token", first_tokens=sets)
        for row, it in enumerate(items):
            logits = model(input_ids=torch.tensor([it.context])).logits[0, -1]
            logprobs = torch.log_softmax(logits.float(), -1)
            want = torch.stack([torch.logsumexp(logprobs[s], -1) for s in sets])
            torch.testing.assert_close(got.scores[row], want, atol=1e-5, rtol=0)
            top = int(logprobs.argmax())
            assert got.is_greedy[row].tolist() == [top in s for s in sets]


def test_greedy_flags_follow_argmax() -> None:
    model = tiny_model()
    ctx = [3, 4, 5, 6]
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=torch.tensor([ctx])).logits[0, -1], -1)
    best = int(logprobs.argmax())
    worst = int(logprobs.argmin())
    out = label_scores(model, [EncodedItem(ctx, [[best], [worst]])])
    assert out.is_greedy.tolist() == [[True, False]]


def test_bad_batches_are_clear_errors() -> None:
    model = tiny_model()
    with pytest.raises(ValueError, match="same number of labels"):
        label_scores(model, [EncodedItem([1, 2], [[3], [4]]), EncodedItem([1, 2], [[3]])])
    with pytest.raises(ValueError, match="unknown readout mode"):
        label_scores(model, [EncodedItem([1, 2], [[3]])], mode="mean")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="token-id set per label"):
        label_scores(model, [EncodedItem([1, 2], [[3], [4]])], mode="first_token")
    model.config._attn_implementation = "flash_attention_2"
    with pytest.raises(ValueError, match="sdpa"):
        label_scores(model, [EncodedItem([1, 2], [[3]])])


def char_encode(text: str) -> list[int]:
    """A character tokenizer that merges a space into the following letter, like BPE does."""
    out, i = [], 0
    while i < len(text):
        if text[i] == " " and i + 1 < len(text) and text[i + 1] != " ":
            out.append(1000 + ord(text[i + 1]))
            i += 2
        else:
            out.append(ord(text[i]))
            i += 1
    return out


def test_encode_item_splits_like_lm_eval() -> None:
    # Trailing context spaces move into the continuation, which is read off the whole encoding.
    item = encode_item(char_encode, "Answer: ", ["yes", "no"])
    assert item.context == char_encode("Answer:")
    assert item.continuations == [
        [1000 + ord("y"), ord("e"), ord("s")],
        [1000 + ord("n"), ord("o")],
    ]
    with pytest.raises(ValueError, match="no tokens"):
        encode_item(char_encode, "Answer:", [""])


def test_truncate_keeps_the_end_of_the_prompt() -> None:
    item = EncodedItem(list(range(10)), [[1, 2, 3], [4]])
    assert truncate(item, 20) is item
    cut = truncate(item, 8)
    assert cut.context == list(range(4, 10)) and len(cut.context) + 3 == 9
    with pytest.raises(ValueError, match="does not fit"):
        truncate(item, 2)


def test_first_token_sets_drop_shared_tokens() -> None:
    vocab: dict[str, int] = {}

    def encode(s: str) -> list[int]:
        first = s[:2].lower() if s.startswith(" ") else s[:1].lower()
        return [vocab.setdefault(first, len(vocab))]

    sets = first_token_sets(encode, ["neutral", "no"], {"neutral": ("maybe",), "no": ("false",)})
    assert sets.dropped and all(set(v) == {"neutral", "no"} for v in sets.dropped.values())
    assert {encode("m")[0], encode(" m")[0]} == set(sets.token_ids[0])
    assert {encode("f")[0], encode(" f")[0]} == set(sets.token_ids[1])
    with pytest.raises(ValueError, match="use mode=full"):
        first_token_sets(encode, ["neutral", "nothing"])
    ok = first_token_sets(encode, ["yes", "maybe"])
    assert not ok.dropped and all(ok.token_ids)
    assert " Yes" in surface_variants("yes") and "YES" in surface_variants("yes")
