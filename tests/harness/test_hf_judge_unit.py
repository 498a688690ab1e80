"""hf-judge on a tiny random Llama (issue #12): its numbers against a plain transformers
computation, one (prompt, label) sequence at a time; batching and the prefix cache change no
number; over-long prompts are cut, counted and recorded. Seconds, no weights on disk."""

from __future__ import annotations

import math

import pytest
import torch
from lm_eval.api.instance import Instance
from tiny_models import byte_tokenizer, one_thread, tiny_llama

from distjudge_eval import truncation
from distjudge_eval.errors import UserError
from distjudge_eval.models.hf_judge import HFJudgeLM

SHARED = "Decide whether the statement is correct. Answer with one word.\n"
STATEMENTS = [
    "Water boils at 100 C.",
    "Cats are reptiles.",
    "The sun rises in the east, as seen from almost anywhere on Earth.",
    "Two and two make five.",
    "Paris is in France.",
]
YES_NO = [" yes", " no"]
THREE = [" true", " false", " unsure"]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def model():
    return tiny_llama()


@pytest.fixture(scope="module")
def tok():
    return byte_tokenizer()


def judge(model, tok, **kw) -> HFJudgeLM:
    return HFJudgeLM(pretrained=model, tokenizer=tok, batch_size=1, **kw)


def requests(task: str, labels: list[str], statements: list[str] = STATEMENTS) -> list[Instance]:
    """lm-eval's multiple-choice requests: one per (item, label), as ConfigurableTask builds."""
    out = []
    for doc_id, text in enumerate(statements):
        context = f"{SHARED}Statement: {text}\nAnswer:"
        for k, label in enumerate(labels):
            out.append(
                Instance(
                    request_type="loglikelihood",
                    doc={"id": f"{task}-{doc_id}"},
                    arguments=(context, label),
                    idx=k,
                    metadata=(task, doc_id, 1),
                )
            )
    return out


def ids(tok, text: str) -> list[int]:
    return tok.encode(text, add_special_tokens=False)


@torch.no_grad()
def direct_loglikelihood(
    model, tok, context: str, label: str, keep: int | None = None
) -> tuple[float, bool]:
    """log P(label | context) from one unpadded forward pass over context + label, keeping the
    context's last ``keep`` tokens (what truncation leaves)."""
    ctx = ids(tok, context)
    cont = ids(tok, context + label)[len(ctx) :]
    if keep is not None:
        ctx = ctx[-keep:]
    seq = torch.tensor([ctx + cont])
    logp = torch.log_softmax(model(seq).logits[0, :-1].double(), -1)
    rows = logp[len(ctx) - 1 :]
    target = torch.tensor(cont)
    score = rows.gather(-1, target[:, None]).sum().item()
    greedy = bool((rows.argmax(-1) == target).all())
    return score, greedy


@torch.no_grad()
def direct_first_token(model, tok, context: str, first_tokens: list[int]) -> float:
    """log Σ_{t ∈ T_k} P(t | context) from the next-token distribution after the context."""
    logits = model(torch.tensor([ids(tok, context.rstrip())])).logits[0, -1].double()
    return torch.logsumexp(torch.log_softmax(logits, -1)[first_tokens], 0).item()


def test_full_readout_equals_transformers_one_sequence_at_a_time(model, tok) -> None:
    reqs = requests("t2", YES_NO) + requests("t3", THREE, STATEMENTS[:3])
    out = judge(model, tok).loglikelihood(reqs, disable_tqdm=True)
    assert len(out) == len(reqs)
    for req, (score, greedy) in zip(reqs, out):
        want, want_greedy = direct_loglikelihood(model, tok, *req.args)
        assert score == pytest.approx(want, abs=1e-4)
        assert greedy == want_greedy
    # the numbers depend on the label: request order was kept, not sorted by length
    assert len({round(s, 6) for s, _ in out}) == len(out)


def test_first_token_readout_equals_the_next_token_mass(model, tok) -> None:
    lm = judge(model, tok, readout="first_token")
    reqs = requests("t3", THREE)
    out = lm.loglikelihood(reqs, disable_tqdm=True)
    sets = lm._first_tokens(THREE)
    assert all(sets) and not set(sets[0]) & set(sets[1])  # the readout's token sets are usable
    for i, (score, _) in enumerate(out):
        req = reqs[i]
        want = direct_first_token(model, tok, req.args[0], sets[req.idx])
        assert score == pytest.approx(want, abs=1e-5)


@pytest.mark.parametrize(
    "settings",
    [
        {"max_batch_items": 2},
        {"max_batch_tokens": 150},  # one item a batch for most rows, two for the shortest
        {"prefix_cache": "false"},
        {"prefix_cache": "0", "max_batch_items": 3},
    ],
)
def test_batching_and_prefix_cache_change_no_number(model, tok, settings: dict) -> None:
    reqs = requests("t2", YES_NO)
    one_at_a_time = judge(model, tok, max_batch_items=1).loglikelihood(reqs, disable_tqdm=True)
    batched = judge(model, tok, **settings).loglikelihood(reqs, disable_tqdm=True)
    for (a, ga), (b, gb) in zip(one_at_a_time, batched):
        assert a == pytest.approx(b, abs=1e-5) and ga == gb


def test_token_budget_really_makes_several_batches(model, tok) -> None:
    lm = judge(model, tok, max_batch_tokens=150)
    reqs = requests("t2", YES_NO)
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(reqs):
        groups.setdefault(r.args[0], []).append(i)
    entries = lm._encode_task(reqs, "t2", groups)
    sizes = [len(b) for b in lm._batches(sorted(entries, key=lambda e: -len(e.item.context)), 0)]
    assert sum(sizes) == len(STATEMENTS) and len(sizes) > 1
    assert judge(model, tok).items_per_batch == 64 and lm.use_prefix_cache is True
    assert judge(model, tok, prefix_cache="no").use_prefix_cache is False


def test_over_long_prompts_are_cut_counted_and_recorded(model, tok) -> None:
    truncation.clear("t2")
    reqs = requests("t2", YES_NO)
    lengths = [len(ids(tok, r.args[0].rstrip())) for r in reqs[::2]]
    max_length = sorted(lengths)[2] + 1  # room (4-token label) fits the 2 shortest
    lm = judge(model, tok, max_length=max_length)
    out = lm.loglikelihood(reqs, disable_tqdm=True)
    longest_label = max(len(ids(tok, lab)) for lab in YES_NO)  # " yes": 4 tokens
    room = max_length + 1 - longest_label
    cut = [n > room for n in lengths]
    assert lm.truncated == {"t2": sum(cut)} and 0 < sum(cut) < len(lengths)
    for req, (score, _) in zip(reqs, out):
        was_cut = cut[req.doc_id]
        want, _ = direct_loglikelihood(model, tok, *req.args, keep=room if was_cut else None)
        assert score == pytest.approx(want, abs=1e-4)
        assert truncation.status("t2", req.doc) == ("cut" if was_cut else None)
    assert truncation.count("t2") == sum(cut)


def test_skip_returns_nan_for_skipped_items_and_scores_the_rest(model, tok) -> None:
    truncation.clear("t2")
    reqs = requests("t2", YES_NO)
    lengths = [len(ids(tok, r.args[0].rstrip())) for r in reqs[::2]]
    max_length = min(lengths) + 3  # only the shortest prompt fits with a 4-token label
    out = judge(model, tok, max_length=max_length, truncation="skip").loglikelihood(
        reqs, disable_tqdm=True
    )
    for req, (score, greedy) in zip(reqs, out):
        if lengths[req.doc_id] == min(lengths):
            assert score == pytest.approx(direct_loglikelihood(model, tok, *req.args)[0], abs=1e-4)
            assert truncation.status("t2", req.doc) is None
        else:
            assert math.isnan(score) and greedy is False
            assert truncation.status("t2", req.doc) == "skipped"


def generation_requests(task: str, max_gen_toks: int) -> list[Instance]:
    kwargs = {"until": ["\n"], "max_gen_toks": max_gen_toks, "do_sample": False}
    return [
        Instance(
            request_type="generate_until",
            doc={"id": f"{task}-{doc_id}"},
            arguments=(f"{SHARED}Statement: {text}\nAnswer:", kwargs),
            idx=0,
            metadata=(task, doc_id, 1),
        )
        for doc_id, text in enumerate(STATEMENTS)
    ]


def test_generation_counts_skips_or_refuses_over_long_prompts(model, tok) -> None:
    reqs = generation_requests("tg", max_gen_toks=3)
    lengths = [len(ids(tok, r.args[0])) for r in reqs]
    max_length = sorted(lengths)[1] + 3  # prompt + 3 generated tokens: the 2 shortest fit
    fits = [n + 3 <= max_length for n in lengths]
    assert 0 < sum(fits) < len(fits)
    free = judge(model, tok).generate_until(reqs, disable_tqdm=True)

    truncation.clear("tg")
    lm = judge(model, tok, max_length=max_length)
    cut = lm.generate_until(reqs, disable_tqdm=True)
    assert lm.truncated == {"tg": fits.count(False)}
    for req, fit, reply, free_reply in zip(reqs, fits, cut, free):
        assert truncation.status("tg", req.doc) == (None if fit else "cut")
        if fit:
            assert reply == free_reply  # untouched prompts generate as without a limit

    truncation.clear("tg")
    skipped = judge(model, tok, max_length=max_length, truncation="skip")
    replies = skipped.generate_until(reqs, disable_tqdm=True)
    for req, fit, reply, free_reply in zip(reqs, fits, replies, free):
        assert truncation.status("tg", req.doc) == (None if fit else "skipped")
        assert reply == (free_reply if fit else "")

    with pytest.raises(UserError, match=r"item \d+ of tg: prompt \d+ tokens \+ max_gen_toks 3"):
        judge(model, tok, max_length=max_length, truncation="fail").generate_until(reqs)
