"""Trainer CLIs: TRL-style parsing (dashed flags, real defaults in --help, --config YAML with
flags winning), and the guards that turn a mistake into one line and exit 2 within seconds,
before any model loads (unknown task, bad numbers, missing data, bad p, nothing to resume)."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from distjudge_eval.errors import UserError
from distjudge_trainer.cli import parse
from distjudge_trainer.data import check_p
from distjudge_trainer.parsing import resolve_resume
from distjudge_trainer.sft import parse_verbal

FAST_S = 5.0


def test_dashed_and_underscored_flags_both_set_the_value(tmp_path: Path) -> None:
    for flag in ("--num-train-epochs", "--num_train_epochs"):
        _, args = parse([flag, "5", "--output_dir", str(tmp_path)])
        assert args.num_train_epochs == 5
    config, args = parse(["--max-train-items", "3", "--lora-r", "4", "--output-dir", "x"])
    assert (config.max_train_items, config.lora_r, args.output_dir) == (3, 4, "x")
    config, _ = parse(["--model_name_or_path", "m", "--use_peft", "False"])  # TRL spellings
    assert (config.model, config.use_lora) == ("m", False)
    _, sft = parse_verbal(["--num-train-epochs", "3"], "distjudge sft", None, "DistJudgeSFTConfig")
    assert sft.num_train_epochs == 3


def test_either_checkpointing_flag_turns_recomputation_on(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from distjudge_trainer.args import checkpointing_on

    assert not checkpointing_on(parse(["--output_dir", str(tmp_path)])[1])
    for flag in ("--activation_checkpointing", "--gradient_checkpointing"):  # new and old name
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # transformers 5 on the old name
            assert checkpointing_on(parse([flag, "True", "--output_dir", str(tmp_path)])[1])
    # transformers < 5 has only the old name; a later one may keep only the new
    assert checkpointing_on(SimpleNamespace(gradient_checkpointing=True))
    assert checkpointing_on(SimpleNamespace(activation_checkpointing=True))
    assert not checkpointing_on(SimpleNamespace(activation_checkpointing=False))


def test_our_defaults_apply_without_flags() -> None:
    config, args = parse([])
    assert (config.alpha, config.epsilon, config.task) == (0.8, 0.25, "distjudge_snli")
    assert args.learning_rate == 5e-5 and args.num_train_epochs == 2
    assert args.per_device_train_batch_size == 4 and args.logging_steps == 10
    assert args.save_strategy == "epoch" and args.report_to in ([], "none", ["none"])
    assert args.remove_unused_columns is False and args.optim == "adamw_torch"
    _, sft = parse_verbal([], "distjudge sft", None, "DistJudgeSFTConfig")
    assert (sft.learning_rate, sft.num_train_epochs, sft.max_length) == (2e-4, 1, 8192)
    _, grpo = parse_verbal([], "distjudge grpo", None, "DistJudgeGRPOConfig")
    assert (grpo.learning_rate, grpo.per_device_train_batch_size) == (1e-5, 8)
    # None: the task's max_gen_toks, set once the task is loaded (checked in the e2e run)
    assert (grpo.num_generations, grpo.max_completion_length) == (4, None)


def test_host_memory_is_pinned_only_with_an_accelerator(monkeypatch, tmp_path: Path) -> None:
    """torch warns on every DataLoader asked to pin memory with no accelerator (every CPU
    run); with one, pinning stays on as in transformers; a flag wins either way."""
    import torch

    out = ["--output_dir", str(tmp_path)]
    for present in (False, True):
        monkeypatch.setattr(torch.accelerator, "is_available", lambda present=present: present)
        assert parse(out)[1].dataloader_pin_memory is present
        _, sft = parse_verbal(out, "distjudge sft", None, "DistJudgeSFTConfig")
        assert sft.dataloader_pin_memory is present
        flag = ["--dataloader_pin_memory", str(not present)]
        assert parse([*out, *flag])[1].dataloader_pin_memory is (not present)


def _default_in_help(help_text: str, flag: str) -> str:
    """The '(default: ...)' argparse prints for ``flag``."""
    lines = help_text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(flag + " "))
    block = []
    for line in lines[start:]:
        if block and line.strip().startswith("--"):
            break
        block.append(line.strip())
    text = " ".join(block)
    return text[text.index("(default: ") + len("(default: ") :].split(")")[0]


def test_help_shows_the_defaults_that_apply() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "distjudge_trainer", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = proc.stdout
    assert _default_in_help(text, "--learning_rate") == "5e-05"
    assert _default_in_help(text, "--num_train_epochs") == "2.0"
    assert _default_in_help(text, "--per_device_train_batch_size") == "4"
    assert _default_in_help(text, "--save_strategy") == "epoch"
    assert _default_in_help(text, "--optim") == "adamw_torch"
    assert _default_in_help(text, "--alpha") == "0.8"
    assert "--config" in text and "--include_path" in text


def test_help_of_sft_and_grpo_shows_their_defaults() -> None:
    from distjudge_trainer import trl_args
    from distjudge_trainer.config import VerbalizedConfig
    from distjudge_trainer.parsing import make_parser

    sft = make_parser((VerbalizedConfig, trl_args.DistJudgeSFTConfig), "sft", None)
    grpo = make_parser((VerbalizedConfig, trl_args.DistJudgeGRPOConfig), "grpo", None)
    assert _default_in_help(sft.format_help(), "--learning_rate") == "0.0002"
    assert _default_in_help(sft.format_help(), "--max_length") == "8192"
    assert _default_in_help(grpo.format_help(), "--learning_rate") == "1e-05"
    assert _default_in_help(grpo.format_help(), "--num_generations") == "4"


def test_config_file_sets_values_and_flags_override_it(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(
        "task: distjudge_mtbench\nalpha: 0.5\nlearning_rate: 1e-3\nnum_train_epochs: 3\n"
        "use_lora: false\noutput_dir: runs/from_yaml\n"
    )
    config, args = parse(["--config", str(path), "--num-train-epochs", "7", "--alpha", "0.2"])
    assert (config.task, config.use_lora, args.output_dir) == (
        "distjudge_mtbench",
        False,
        "runs/from_yaml",
    )
    assert args.learning_rate == pytest.approx(1e-3)  # YAML reads 1e-3 as a string: converted
    assert args.num_train_epochs == 7 and config.alpha == 0.2  # the command line wins
    config, args = parse([f"--config={path}"])
    assert args.num_train_epochs == 3 and config.alpha == 0.5
    path.write_text("alpha: 0.5\nlearnig_rate: 1e-3\n")
    with pytest.raises(UserError, match="learnig_rate"):
        parse(["--config", str(path)])
    with pytest.raises(UserError, match="no such file"):
        parse(["--config", str(tmp_path / "missing.yaml")])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--max_train_items", "0"], "--max_train_items must be a number of train items >= 1"),
        (["--max_train_items", "-3"], "--max_train_items must be"),
        (["--alpha", "1.5"], "--alpha must lie in [0, 1]"),
        (["--epsilon", "-0.1"], "--epsilon must be >= 0"),
        (["--readout", "last_token"], "--readout must be one of full | first_token"),
        (["--eval_items", "-1"], "--eval_items must be a number of items >= 0"),
        (["--max_tokens_per_batch", "0"], "--max_tokens_per_batch must be a number of tokens >= 1"),
        (["--eval_strategy", "epoch"], "--eval_strategy needs --eval_items N > 0"),
        (["--eval_on_start", "True"], "--eval_on_start needs --eval_items N > 0"),
        (["--learning_rate", "fast"], "invalid float value"),
        (["--lerning_rate", "1e-4"], "did you mean --learning_rate"),
    ],
)
def test_bad_settings_are_one_line_user_errors(argv: list[str], message: str) -> None:
    with pytest.raises(UserError) as info:
        parse(argv)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_eval_items_alone_evaluates_each_epoch() -> None:
    from transformers.trainer_utils import IntervalStrategy

    config, args = parse([])
    assert config.eval_items == 0 and args.eval_strategy == IntervalStrategy.NO
    config, args = parse(["--eval-items", "50"])
    assert config.eval_items == 50 and args.eval_strategy == IntervalStrategy.EPOCH
    assert args.do_eval
    _, args = parse(["--eval_items", "50", "--eval_strategy", "steps", "--eval_steps", "7"])
    assert args.eval_strategy == IntervalStrategy.STEPS and args.eval_steps == 7  # kept


def test_verbalized_settings_are_checked() -> None:
    prog, cls = "distjudge grpo", "DistJudgeGRPOConfig"
    with pytest.raises(UserError, match=r"--reward must be one of brier \| log"):
        parse_verbal(["--reward", "accuracy"], prog, None, cls)
    with pytest.raises(UserError, match="--max_prompt_tokens"):
        parse_verbal(["--max_prompt_tokens", "0"], prog, None, cls)
    with pytest.raises(UserError, match="--ties"):
        parse_verbal(["--ties", "both"], prog, None, cls)


def test_resume_true_picks_the_newest_checkpoint(tmp_path: Path) -> None:
    for step in (2, 10, 9):
        (tmp_path / f"checkpoint-{step}").mkdir()
    (tmp_path / "checkpoint-99.tmp").mkdir()  # not a checkpoint-N folder
    for value in ("True", "true", True):
        assert resolve_resume(value, str(tmp_path)) == str(tmp_path / "checkpoint-10")
    for value in (None, "False", False, ""):
        assert resolve_resume(value, str(tmp_path)) is None
    explicit = str(tmp_path / "checkpoint-2")
    assert resolve_resume(explicit, str(tmp_path)) == explicit
    with pytest.raises(UserError, match="no checkpoint-N folder"):
        resolve_resume("True", str(tmp_path / "empty"))
    with pytest.raises(UserError, match="no such checkpoint folder"):
        resolve_resume(str(tmp_path / "checkpoint-3"), str(tmp_path))


@pytest.mark.parametrize(
    ("p", "message"),
    [
        ([0.0, 0.0, 0.0], "sums to 0"),
        ([1.0, 0.5, 0.5], "sums to 2"),
        ([1.2, -0.2, 0.0], "negative or non-finite"),
        ([0.5, float("nan"), 0.5], "negative or non-finite"),
        ([0.5, 0.5], "2 entries but the task has 3 labels"),
        (None, "no 'p' field"),
    ],
)
def test_bad_p_is_refused_naming_the_item(p, message: str) -> None:
    with pytest.raises(UserError, match="item snli/42") as info:
        check_p(p, 3, "snli/42")
    assert message in str(info.value)


def test_p_within_the_tolerance_is_accepted() -> None:
    check_p([0.2, 0.3, 0.5 + 5e-7], 3, "ok")
    check_p([1.0, 0.0, 0.0], 3, "vertex")
    with pytest.raises(UserError):
        check_p([0.2, 0.3, 0.5 + 5e-6], 3, "off")


# --- the real CLI, as a user runs it: one line on stderr, exit 2, before any model loads ---


def run_train(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str, float]:
    """Exit code, stderr and the CPU seconds the run took. CPU time, not wall time: this
    machine's 2 cores are shared, and under load the wall time of the same run doubles."""
    cmd = [sys.executable, "-m", "distjudge_trainer", *args]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    print(f"{args}: {cpu:.2f} s CPU, {wall:.2f} s wall")
    return proc.returncode, proc.stderr, cpu


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


@pytest.fixture()
def env(data_dir: Path) -> dict[str, str]:
    return {**os.environ, "DISTJUDGE_DATA_DIR": str(data_dir)}


def user_task(folder: Path, rows: list[dict], name: str = "mytask") -> Path:
    """A user's own task folder (lm-eval YAML over a JSON-lines file), for --include_path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / f"{name}.yaml").write_text(
        f"task: {name}\ndataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    train: {folder / 'items.jsonl'}\n"
        f"    test: {folder / 'items.jsonl'}\n"
        "output_type: multiple_choice\ntraining_split: train\ntest_split: test\n"
        'doc_to_text: "{{text}}\\nAnswer:"\ndoc_to_choice: ["yes", "no", "maybe"]\n'
        "doc_to_target: 0\nmetric_list:\n  - metric: acc\n    aggregation: mean\n"
        "    higher_is_better: true\n"
    )
    return folder


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "nope"], "unknown task 'nope'"),
        (["--task", "distjudge_snlii"], "did you mean distjudge_snli"),
        (["--max_train_items", "0"], "--max_train_items must be"),
        (["--data_dir", "/nonexistent/distjudge"], "data dir /nonexistent/distjudge"),
        (["--resume_from_checkpoint", "True"], "no checkpoint-N folder"),
        (["--include_path", "/nonexistent/tasks"], "--include_path /nonexistent/tasks"),
        (
            ["--max_tokens_per_batch", "512", "--train_sampling_strategy", "group_by_length"],
            "--max_tokens_per_batch orders the items itself",
        ),
    ],
)
def test_cli_mistakes_fail_fast_in_one_line(
    args: list[str], message: str, env: dict[str, str], tmp_path: Path
) -> None:
    code, stderr, seconds = run_train([*args, "--output_dir", str(tmp_path / "out")], env)
    lines = error_lines(stderr)
    assert code == 2, stderr[-2000:]
    assert len(lines) == 1 and message in lines[0], stderr[-2000:]
    assert lines[0].startswith("distjudge train: error: ")
    assert seconds < FAST_S, f"{seconds:.1f} s to fail"


def test_data_errors_come_before_the_model_loads(env: dict[str, str], tmp_path: Path) -> None:
    """A bad p in a user's task (--include_path) and a data file missing from the data dir stop
    the run naming the item / file. ``--model`` names no model at all, so reaching the model
    load would be a different error: the docs are built (and checked) first."""
    rows = [{"id": "a", "text": "x", "p": [0.5, 0.5, 0]}, {"id": "b", "text": "y", "p": [1, 1, 0]}]
    folder = user_task(tmp_path / "tasks", rows)
    no_model = ["--model", str(tmp_path / "no_model"), "--output_dir", str(tmp_path / "o")]
    empty = tmp_path / "empty_data"
    empty.mkdir()
    cases = [
        (["--include_path", str(folder), "--task", "mytask"], "item mytask/b: p = [1.0, 1.0, 0.0]"),
        (["--data_dir", str(empty), "--max_train_items", "2"], "snli_1.0_dev.jsonl"),
    ]
    for args, message in cases:
        code, stderr, _ = run_train([*args, *no_model], env)
        # lm-eval and datasets log as they build the task; our error is the last line, alone
        ours = [line for line in error_lines(stderr) if line.startswith("distjudge train:")]
        assert code == 2 and ours == error_lines(stderr)[-1:], stderr[-2000:]
        assert message in ours[0] and "Traceback" not in stderr


def test_user_task_docs_load_through_include_path(tmp_path: Path) -> None:
    from distjudge_trainer.data import load_docs

    rows = [{"id": str(i), "text": f"t{i}", "p": [0.2, 0.3, 0.5]} for i in range(5)]
    folder = user_task(tmp_path / "tasks", rows, name="mytask_ok")
    (loaded,) = load_docs("mytask_ok", max_items=3, user_paths=[str(folder)])
    assert loaded.name == "mytask_ok" and [d["id"] for d in loaded.docs] == ["0", "1", "2"]


def test_eval_docs_are_the_first_trained_and_first_test_docs(tmp_path: Path) -> None:
    """--eval_items N: per task, the first N of the docs trained on (never an untrained one,
    whatever --max_train_items) and the first N test-split docs, every p checked."""
    from distjudge_trainer.data import eval_docs, load_docs

    folder = user_task(tmp_path / "tasks", [], name="mytask_split")
    rows = {
        "train": [{"id": f"tr{i}", "text": "t", "p": [0.2, 0.3, 0.5]} for i in range(5)],
        "test": [{"id": f"te{i}", "text": "t", "p": [1, 0, 0]} for i in range(4)],
    }
    for split, items in rows.items():
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in items))
    yaml = folder / "mytask_split.yaml"
    yaml.write_text(
        yaml.read_text()
        .replace(f"train: {folder / 'items.jsonl'}", f"train: {folder / 'train.jsonl'}")
        .replace(f"test: {folder / 'items.jsonl'}", f"test: {folder / 'test.jsonl'}")
    )
    trained = load_docs("mytask_split", max_items=2, user_paths=[str(folder)])
    sets = eval_docs(trained, 3)
    assert [d["id"] for d in sets["train"][0].docs] == ["tr0", "tr1"]
    assert [d["id"] for d in sets["test"][0].docs] == ["te0", "te1", "te2"]
    (test,) = load_docs("mytask_split", max_items=2, user_paths=[str(folder)], split="test")
    assert [d["id"] for d in test.docs] == ["te0", "te1"]
    rows["test"][1]["p"] = [1, 1, 0]
    (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows["test"]))
    trained = load_docs("mytask_split", max_items=2, user_paths=[str(folder)])
    with pytest.raises(UserError, match=r"item mytask_split/te1: p = \[1.0, 1.0, 0.0\]"):
        eval_docs(trained, 3)


def test_missing_extras_are_one_line(monkeypatch, data_dir: Path, tmp_path: Path) -> None:
    import distjudge_trainer.parsing as parsing
    from distjudge_trainer.cli import preflight

    monkeypatch.setenv("DISTJUDGE_DATA_DIR", str(data_dir))
    config, args = parse(["--output_dir", str(tmp_path)])
    real = parsing.find_spec
    missing: set[str] = set()
    monkeypatch.setattr(parsing, "find_spec", lambda n: None if n in missing else real(n))
    missing.add("peft")
    with pytest.raises(UserError, match=r"distjudge train with LoRA .* needs the `peft` package"):
        preflight(config, args, "distjudge train")
    config.use_lora = False  # full fine-tuning does not need peft
    preflight(config, args, "distjudge train")
    missing.add("trl")
    with pytest.raises(UserError, match=r"pip install '\.\[train\]' in the distjudge checkout"):
        parse([])
    with pytest.raises(UserError, match="distjudge sft needs the `trl` package"):
        parse_verbal([], "distjudge sft", None, "DistJudgeSFTConfig")
