"""Model args of the distjudge backends: unknown keys are errors that list the valid ones (before
weights load), hf-judge batches by its token budget by default, and over-long prompts are
counted or refused."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import pytest
import transformers

from distjudge_eval.errors import UserError
from distjudge_eval.models.hf_judge import HFJudgeLM, from_pretrained_args
from distjudge_eval.models.openai_judge import OpenAIJudgeLM
from distjudge_eval.readout import EncodedItem

HARNESS = {"batch_size": 1, "device": "cpu"}  # what lm-eval adds to every backend's args


def test_openai_judge_rejects_a_misspelt_key_and_lists_the_valid_ones() -> None:
    with pytest.raises(UserError) as caught:
        OpenAIJudgeLM.create_from_arg_string("model=m,num_concurent=8", HARNESS)
    message = str(caught.value)
    assert message.startswith("openai-judge: unknown model_args num_concurent (valid: model, ")
    assert "max_consecutive_failures" in message and "num_concurrent" in message
    assert message.endswith("did you mean num_concurent -> num_concurrent?")


def test_openai_judge_takes_lm_evals_own_settings() -> None:
    lm = OpenAIJudgeLM.create_from_arg_string(
        "model=m,num_concurrent=3,base_url=http://127.0.0.1:9/v1",
        {**HARNESS, "max_batch_size": 64, "trust_remote_code": True},
    )
    assert lm.num_concurrent == 3


@pytest.fixture
def no_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading weights fails loudly: the argument check must come first."""

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"weights loaded with {sorted(kwargs)}")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", boom)


def test_hf_judge_rejects_a_misspelt_key_before_the_weights_load(
    no_weights: None, embedded_folder: Path
) -> None:
    args = f"pretrained={embedded_folder},max_batch_token=512"
    with pytest.raises(
        UserError,
        match=r"unknown model_args max_batch_token \(valid: "
        r".*did you mean max_batch_token -> max_batch_tokens\?",
    ):
        HFJudgeLM.create_from_arg_string(args, HARNESS)


@pytest.mark.parametrize("extra", ["attn_implementation=eager", "use_cache=False"])
def test_hf_judge_passes_from_pretrained_args_and_config_fields_on(
    no_weights: None, extra: str, embedded_folder: Path
) -> None:
    with pytest.raises(AssertionError, match=f"weights loaded with .*{extra.split('=')[0]}"):
        HFJudgeLM.create_from_arg_string(f"pretrained={embedded_folder},{extra}", HARNESS)


def test_from_pretrained_args_are_read_from_transformers() -> None:
    """Named, popped, and retired-but-tolerated keys all count (no hand-kept list)."""
    names = from_pretrained_args()
    assert {"device_map", "attn_implementation", "cache_dir", "low_cpu_mem_usage"} <= names
    assert "max_batch_token" not in names


def test_hf_judge_rejects_unknown_keys_for_a_built_model() -> None:
    """lm-eval's hf ignores every extra key when `pretrained` is a model object."""
    with pytest.raises(UserError, match="unknown model_args load_in_4bit"):
        HFJudgeLM(pretrained=object(), load_in_4bit=True)  # type: ignore[arg-type]


def bare_judge(**attrs: object) -> HFJudgeLM:
    """An hf-judge without a model, for the batching and length rules."""
    lm = HFJudgeLM.__new__(HFJudgeLM)
    defaults = {
        "batch_size_per_gpu": 1,
        "max_batch_size": 64,
        "max_batch_items": None,
        "max_batch_tokens": 16384,
        "truncation_mode": "left",
        "truncated": {},
        "_max_length": 2048,
    }
    for key, value in {**defaults, **attrs}.items():
        setattr(lm, key, value)
    return lm


class Entry(NamedTuple):
    """A batching entry: ``.item`` (``[0]`` in the old code, so its tests fail on the rule)."""

    item: EncodedItem


def entries(n: int, prompt: int, labels: int = 3) -> list[Entry]:
    return [Entry(EncodedItem([1] * prompt, [[2]] * labels)) for _ in range(n)]


def batch_sizes(lm: HFJudgeLM, items: list[Entry]) -> list[int]:
    return [len(b) for b in lm._batches(items, prefix_len=0)]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        ({}, [64, 36]),  # lm-eval's default batch_size=1: sized by tokens, at most 64
        ({"batch_size_per_gpu": "auto"}, [64, 36]),
        ({"batch_size_per_gpu": "auto", "max_batch_size": 32}, [32, 32, 32, 4]),
        ({"batch_size_per_gpu": 8}, [8] * 12 + [4]),
        ({"max_batch_items": 1}, [1] * 100),
        ({"max_batch_items": 50, "batch_size_per_gpu": 8}, [50, 50]),
        ({"max_batch_tokens": 1000}, [20] * 5),  # 50 tokens a row
    ],
)
def test_batch_size_rule(attrs: dict, expected: list[int]) -> None:
    assert batch_sizes(bare_judge(**attrs), entries(100, prompt=50)) == expected


def fake_requests(lengths: list[int], task: str = "distjudge_summeval") -> list:
    @dataclass
    class Req:
        args: tuple[str, str]
        doc_id: int
        task_name: str = task

    return [Req((" ".join(["w"] * n), c), d) for d, n in enumerate(lengths) for c in (" a", " b")]


def encode_words(text: str, **_: object) -> list[int]:
    return [7] * len(text.split())


def groups_of(reqs: list) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for i, r in enumerate(reqs):
        out.setdefault(r.args[0], []).append(i)
    return out


def test_over_long_prompts_are_counted_and_warned_once(caplog: pytest.LogCaptureFixture) -> None:
    lm = bare_judge(_max_length=10)
    lm.tok_encode = encode_words  # type: ignore[method-assign]
    reqs = fake_requests([5, 12, 30, 9])
    with caplog.at_level(logging.WARNING, logger="distjudge"):
        out = lm._encode_task(reqs, "distjudge_summeval", groups_of(reqs))
    assert [len(e.item.context) for e in out] == [5, 10, 10, 9]  # room: 10 + 1 - 1 label token
    assert lm.truncated == {"distjudge_summeval": 2}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "hf-judge: 2 of 4 items of distjudge_summeval are longer than max_length=10 tokens; "
        "their prompts were cut from the left (truncation=fail makes this an error)"
    ]


def test_truncation_fail_names_the_item_and_lengths() -> None:
    lm = bare_judge(_max_length=10, truncation_mode="fail")
    lm.tok_encode = encode_words  # type: ignore[method-assign]
    reqs = fake_requests([5, 9, 30])
    with pytest.raises(
        UserError,
        match=r"item 2 of distjudge_summeval: prompt 30 tokens \+ "
        r"label 1 tokens > max_length=10: .*truncation=left",
    ):
        lm._encode_task(reqs, "distjudge_summeval", groups_of(reqs))


def test_truncation_takes_left_skip_or_fail_only() -> None:
    with pytest.raises(UserError, match="truncation must be left, skip or fail"):
        HFJudgeLM(pretrained=object(), truncation=True)  # type: ignore[arg-type]
