"""``distjudge train`` / ``python -m distjudge_trainer``: fine-tune a judge toward human
distributions.

Flags are the :class:`DistJudgeConfig` fields plus every ``transformers.TrainingArguments``
flag (``--learning_rate``, ``--num_train_epochs``, ``--bf16``, ``--activation_checkpointing``,
``--resume_from_checkpoint`` ...), in either spelling (``--num-train-epochs``), or from a YAML
file (``--config run.yaml``; flags on the command line win), so
``accelerate launch -m distjudge_trainer ...`` scales out as usual.

Order of work: settings are checked, then the task names, the data dir and the train docs
(every p), and only then does the model load, so a mistake costs seconds, not a model load.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from distjudge_eval.errors import UserError
from distjudge_trainer.config import DistJudgeConfig, ModelSettings

logger = logging.getLogger("distjudge")

PROG = "distjudge train"


def parse(argv: Sequence[str]) -> tuple[DistJudgeConfig, Any]:
    """Flags (and ``--config file.yaml``) into our settings and the TrainingArguments."""
    from distjudge_trainer.args import DistJudgeTrainingArguments
    from distjudge_trainer.parsing import parse_args

    config, training_args = parse_args(
        argv, (DistJudgeConfig, DistJudgeTrainingArguments), PROG, __doc__
    )
    schedule_eval(config, training_args)
    return config, training_args


def schedule_eval(config: DistJudgeConfig, training_args: Any) -> None:
    """``--eval_items N`` alone evaluates at the end of every epoch (``--eval_strategy no``
    becomes ``epoch``; ``steps`` or ``epoch`` given by the user stay). An evaluation schedule
    without ``--eval_items`` would have nothing to score, and the Trainer would say so only
    after the model has loaded: it is one line now."""
    from transformers.trainer_utils import IntervalStrategy

    strategy = IntervalStrategy(training_args.eval_strategy)
    if config.eval_items and strategy == IntervalStrategy.NO:
        training_args.eval_strategy = IntervalStrategy.EPOCH
        training_args.do_eval = True
    elif not config.eval_items and (strategy != IntervalStrategy.NO or training_args.eval_on_start):
        flag = "--eval_on_start" if strategy == IntervalStrategy.NO else "--eval_strategy"
        raise UserError(
            f"{flag} needs --eval_items N > 0 (the train and test items each evaluation scores)"
        )


def preflight(config: ModelSettings, training_args: Any, command: str) -> None:
    """Every check that needs no model (cheap to repeat: the task index is cached), and
    ``--resume_from_checkpoint True`` resolved to the newest checkpoint in output_dir."""
    from distjudge_trainer import parsing

    parsing.preflight(config, command)
    resume = parsing.resolve_resume(training_args.resume_from_checkpoint, training_args.output_dir)
    if resume:
        logger.info("resuming from %s", resume)
    training_args.resume_from_checkpoint = resume
    # The Trainer seeds only when it is built, after the model: without this the LoRA matrices
    # start from an unseeded draw, so the same command (or 1 vs N processes) gave other adapters.
    from transformers import set_seed

    set_seed(training_args.seed)


def load_model_and_tokenizer(config: ModelSettings) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if config.model is None:
        from distjudge_eval.embedded import embedded_weights

        folder, config.gguf_file = embedded_weights()
        config.model = str(folder)
    extra = {"gguf_file": config.gguf_file} if config.gguf_file else {}
    tokenizer = AutoTokenizer.from_pretrained(config.model, **extra)
    model = AutoModelForCausalLM.from_pretrained(
        config.model, dtype=torch.float32, attn_implementation="sdpa", **extra
    )
    if config.gguf_file:
        from distjudge_eval.embedded import drop_gguf_bookkeeping

        drop_gguf_bookkeeping(model)  # else Trainer refuses a "quantized" model
    if config.use_lora:
        model = with_lora(model, config)
    return model, tokenizer


def with_lora(model: Any, config: ModelSettings) -> Any:
    """The model wrapped in fresh LoRA adapters of our LoRA flags."""
    from peft import get_peft_model

    from distjudge_eval.library_warnings import quiet_peft_deprecation

    with quiet_peft_deprecation():  # peft reads a name transformers 5 deprecates
        return get_peft_model(model, lora_config(config))


def lora_config(config: ModelSettings) -> Any:
    """The peft LoraConfig of our LoRA flags (TRL's get_peft_config, in our flag names)."""
    from peft import LoraConfig

    targets = config.lora_target_modules
    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=targets if targets == "all-linear" else targets.split(","),
        task_type="CAUSAL_LM",
    )


def train(config: DistJudgeConfig, training_args: Any) -> Path:
    """Docs first (fast failures), then the model, then the Trainer."""
    from transformers.trainer_utils import IntervalStrategy

    from distjudge_eval.readout import label_first_tokens
    from distjudge_trainer.args import checkpointing_on
    from distjudge_trainer.data import build_examples, collate, eval_docs, load_docs
    from distjudge_trainer.trainer import DistJudgeTrainer

    schedule_eval(config, training_args)
    preflight(config, training_args, PROG)
    docs = load_docs(config.task, config.max_train_items, config.user_paths(), config.data_dir)
    scored = eval_docs(docs, config.eval_items) if config.eval_items else {}
    model, tokenizer = load_model_and_tokenizer(config)
    if config.use_lora and checkpointing_on(training_args):
        model.enable_input_require_grads()
    chat = config.apply_chat_template
    examples = build_examples(docs, tokenizer, apply_chat_template=chat)
    logger.info("training on %d train-split items of %s", len(examples), config.task)
    eval_sets = {
        split: build_examples(split_docs, tokenizer, apply_chat_template=chat)
        for split, split_docs in scored.items()
    }
    if eval_sets:
        logger.info(
            "evaluating (%s) on %s",
            IntervalStrategy(training_args.eval_strategy).value,
            ", ".join(f"{len(v)} {k}-split items" for k, v in eval_sets.items()),
        )
    first_tokens = None
    if config.readout == "first_token":
        conts = [tokenizer.decode(c) for c in examples[0].item.continuations]
        first_tokens = label_first_tokens(
            lambda s: tokenizer.encode(s, add_special_tokens=False), conts
        )
    trainer = DistJudgeTrainer(
        model=model,
        args=training_args,
        train_dataset=examples,
        eval_dataset=eval_sets or None,
        data_collator=collate,
        processing_class=tokenizer,
        dj_config=config,
        first_tokens=first_tokens,
    )
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    return save_run(trainer, tokenizer, config, training_args)


def save_run(trainer: Any, tokenizer: Any, config: ModelSettings, training_args: Any) -> Path:
    """Adapter (or full weights), tokenizer and the run's settings, ready for the harness."""
    out = Path(training_args.output_dir)
    trainer.save_model(str(out))  # on the main process only (DDP: every rank calls it)
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(out))
        (out / "distjudge_config.json").write_text(
            json.dumps(
                {"distjudge": config.to_dict(), "training": training_args.to_dict()},
                indent=2,
                default=str,
            )
        )
        history = eval_history(trainer.state.log_history)
        if history:
            (out / "eval_history.json").write_text(json.dumps(history, indent=2) + "\n")
        if config.merge_weights and config.use_lora:
            merged = trainer.model.merge_and_unload()
            merged.save_pretrained(str(out / "merged"))
            tokenizer.save_pretrained(str(out / "merged"))
    return out


SPEED = ("_runtime", "_samples_per_second", "_steps_per_second", "_model_preparation_time")


def eval_history(log_history: list[dict]) -> list[dict]:
    """One row per evaluation, ``{epoch, step, eval_train_kl, ..., eval_test_kl, ...}``: the
    Trainer logs each eval dataset as its own entry; they are merged by step, speed figures
    left out."""
    rows: dict[int, dict] = {}
    for entry in log_history:
        metrics = {
            k: v for k, v in entry.items() if k.startswith("eval_") and not k.endswith(SPEED)
        }
        if metrics:
            row = rows.setdefault(
                entry["step"], {"epoch": entry.get("epoch"), "step": entry["step"]}
            )
            row.update(metrics)
    return list(rows.values())


def eval_hint(config: ModelSettings, out: Path, tasks: str) -> str:
    base = f"pretrained={config.model}" + (
        f",gguf_file={config.gguf_file}" if config.gguf_file else ""
    )
    target = base + f",peft={out}" if config.use_lora else f"pretrained={out}"
    include = f" --include_path {config.include_path}" if config.include_path else ""
    command = f"distjudge eval --model hf-judge --model_args {target} --tasks {tasks}{include}"
    return f"saved to {out}\nevaluate: {command}"


def main(argv: Sequence[str] | None = None) -> int:
    from distjudge_trainer.parsing import early_checks, run_main

    def body() -> int:
        args = sys.argv[1:] if argv is None else list(argv)
        early_checks(args, DistJudgeConfig, PROG)
        config, training_args = parse(args)
        out = train(config, training_args)
        print(eval_hint(config, out, config.task))
        return 0

    return run_main(PROG, body)
