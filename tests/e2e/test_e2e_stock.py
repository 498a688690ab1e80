"""End to end with stock lm-eval: the real ``distjudge eval`` CLI with lm-eval's own ``hf`` model
on the embedded SmolLM2 for every task, its q and generations checked against transformers
reading the GGUF file itself. hf-judge's runs are in test_e2e_hf_judge.py (its own file, so
pytest-xdist runs the two on separate workers)."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_support import ALL_TASKS, VERBAL_TASKS, check_q_against_transformers, run_cli

from distjudge_eval.embedded import EMBEDDED_GGUF, embedded_model_dir

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def direct_model():
    """The independent reference: transformers reading the GGUF file itself (the CLI loads the
    converted copy in distjudge's cache)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = embedded_model_dir()
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=EMBEDDED_GGUF)
    model = AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=EMBEDDED_GGUF, dtype=torch.float32
    )
    return tok, model.eval()


def test_the_cached_copy_is_the_gguf_model_bit_for_bit(direct_model) -> None:
    """What every run loads (distjudge_eval.embedded's converted folder) equals what
    transformers reads from the GGUF file: every weight, and the tokens of a chat prompt."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from distjudge_eval.embedded import embedded_weights

    folder, gguf = embedded_weights()
    assert gguf is None and (folder / "model.safetensors").is_file()
    tok, model = direct_model
    copy = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    copy_tok = AutoTokenizer.from_pretrained(folder)
    reference = model.state_dict()
    assert copy.state_dict().keys() == reference.keys()
    for name, tensor in copy.state_dict().items():
        assert torch.equal(tensor, reference[name]), name
    chat = [{"role": "user", "content": "Premise: a dog runs. Hypothesis: an animal moves."}]
    for t in (tok, copy_tok):
        assert t.apply_chat_template(chat, tokenize=False) == tok.apply_chat_template(
            chat, tokenize=False
        )
    text = tok.apply_chat_template(chat, tokenize=False) + "entailment ünïcode 12.5"
    assert copy_tok(text).input_ids == tok(text).input_ids


@pytest.fixture(scope="module")
def stock_runs(tmp_path_factory: pytest.TempPathFactory, data_with_mnli: Path) -> dict:
    """Stock ``hf`` on every task, verbalized ones included, plain and with the chat template:
    two CLI runs that the tests below share. Batch size 1: a padded batch could flip a greedy
    token against the unpadded transformers reference."""
    out = tmp_path_factory.mktemp("stock")
    tasks = ALL_TASKS + VERBAL_TASKS
    chat = ["--apply_chat_template"]
    return {
        "plain": run_cli(out / "plain", data_with_mnli, tasks, "--model", "hf", batch_size="1"),
        "chat": run_cli(
            out / "chat", data_with_mnli, tasks, "--model", "hf", *chat, batch_size="1"
        ),
    }


def test_every_task_runs_and_q_matches_transformers(stock_runs: dict, direct_model) -> None:
    check_q_against_transformers(stock_runs["plain"], *direct_model)


def test_chat_template_prompts_run_and_match(stock_runs: dict, direct_model) -> None:
    first = stock_runs["chat"]["distjudge_snli"][0]["arguments"]["gen_args_0"]
    assert "<|im_start|>assistant" in first["arg_0"] and first["arg_1"] == "entailment"
    check_q_against_transformers(stock_runs["chat"], *direct_model)


@pytest.mark.parametrize("variant", ["plain", "chat"])
def test_verbalized_tasks_with_stock_hf_match_transformers_greedy(
    stock_runs: dict, direct_model, variant: str
) -> None:
    """Stock `hf` generation on the verbalized tasks: each reply equals transformers' greedy
    continuation of the logged prompt (cut at the task's stops) and is scored as parsed."""
    import torch

    from distjudge_eval.labels import NLI
    from distjudge_eval.verbalized import verbal_q

    tok, model = direct_model
    run = stock_runs[variant]
    assert "position bias: distjudge_mtbench_verbalized: 1 item in both orders" in run["stdout"]
    for task in VERBAL_TASKS:
        for row in run[task]:
            args = row["arguments"]["gen_args_0"]
            prompt, gen_kwargs = args["arg_0"], args["arg_1"]
            if variant == "chat":
                assert prompt.rstrip().endswith("<prob>") or task.startswith("distjudge_snli")
                assert "<|im_start|>assistant" in prompt
            ids = torch.tensor([tok(prompt, add_special_tokens=False).input_ids])
            with torch.no_grad():
                out = model.generate(
                    ids, max_new_tokens=gen_kwargs["max_gen_toks"], do_sample=False
                )
            local = tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
            for stop in gen_kwargs["until"]:
                local = local.split(stop, 1)[0]
            reply = row["resps"][0][0]
            assert reply == local, (task, reply, local)
            label_set = NLI if task.startswith("distjudge_snli") else None
            q, parsed = verbal_q(reply, label_set)
            assert row["ece"]["q"] == pytest.approx(q)
            assert row["parse_fail"] == (0.0 if parsed else 1.0)
