"""``distjudge train`` / ``python -m trainer``: fine-tune a judge toward human distributions.

Flags are the :class:`DistJudgeConfig` fields plus every ``transformers.TrainingArguments``
flag (``--learning_rate``, ``--num_train_epochs``, ``--bf16``, ``--gradient_checkpointing``,
``--resume_from_checkpoint`` ...), so ``accelerate launch -m trainer ...`` scales out as usual.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trainer.config import DistJudgeConfig, ModelSettings

logger = logging.getLogger("distjudge")

# Our defaults where they differ from TrainingArguments' (the user's flags still win).
TRAINING_DEFAULTS = {
    "learning_rate": "5e-5",
    "num_train_epochs": "2",
    "per_device_train_batch_size": "4",
    "logging_steps": "10",
    "save_strategy": "epoch",
    "report_to": "none",
    "remove_unused_columns": "False",
    "optim": "adamw_torch",
}


def with_defaults(argv: Sequence[str], defaults: dict[str, str]) -> list[str]:
    """``argv`` plus our defaults for every flag the user did not give."""
    args = list(argv)
    given = {a.split("=", 1)[0].lstrip("-") for a in args if a.startswith("--")}
    for key, value in defaults.items():
        if key not in given:
            args += [f"--{key}", value]
    return args


def parse(argv: Sequence[str]) -> tuple[DistJudgeConfig, Any]:
    from transformers import HfArgumentParser, TrainingArguments

    args = with_defaults(argv, TRAINING_DEFAULTS)
    parser = HfArgumentParser((DistJudgeConfig, TrainingArguments))
    config, training_args = parser.parse_args_into_dataclasses(args)
    return config, training_args


def load_model_and_tokenizer(config: ModelSettings) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if config.model is None:
        from distjudge_eval.embedded import EMBEDDED_GGUF, embedded_model_dir

        config.model, config.gguf_file = str(embedded_model_dir()), EMBEDDED_GGUF
    extra = {"gguf_file": config.gguf_file} if config.gguf_file else {}
    tokenizer = AutoTokenizer.from_pretrained(config.model, **extra)
    model = AutoModelForCausalLM.from_pretrained(
        config.model, dtype=torch.float32, attn_implementation="sdpa", **extra
    )
    if config.gguf_file:
        # transformers dequantises GGUF weights to plain float32 on load; only its bookkeeping
        # still calls the model quantized, which would make Trainer refuse to train it.
        model.hf_quantizer = None
        model.is_quantized = False
        if getattr(model.config, "quantization_config", None) is not None:
            del model.config.quantization_config
    if config.use_lora:
        from peft import LoraConfig, get_peft_model

        targets = config.lora_target_modules
        lora = LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=targets if targets == "all-linear" else targets.split(","),
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, lora)
    return model, tokenizer


def train(config: DistJudgeConfig, training_args: Any) -> Path:
    from distjudge_eval.readout import label_first_tokens
    from distjudge_eval.settings import DATA_DIR_ENV
    from trainer.data import build_examples, collate
    from trainer.trainer import DistJudgeTrainer

    if config.data_dir:
        os.environ[DATA_DIR_ENV] = str(Path(config.data_dir).expanduser().resolve())
    model, tokenizer = load_model_and_tokenizer(config)
    if config.use_lora and training_args.gradient_checkpointing:
        model.enable_input_require_grads()
    examples = build_examples(
        config.task,
        tokenizer,
        max_items=config.max_train_items,
        apply_chat_template=config.apply_chat_template,
    )
    logger.info("training on %d train-split items of %s", len(examples), config.task)
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
    trainer.save_model(str(out))
    tokenizer.save_pretrained(str(out))
    if trainer.is_world_process_zero():
        (out / "distjudge_config.json").write_text(
            json.dumps(
                {"distjudge": config.to_dict(), "training": training_args.to_dict()},
                indent=2,
                default=str,
            )
        )
        if config.merge_weights and config.use_lora:
            merged = trainer.model.merge_and_unload()
            merged.save_pretrained(str(out / "merged"))
            tokenizer.save_pretrained(str(out / "merged"))
    return out


def eval_hint(config: ModelSettings, out: Path, tasks: str) -> str:
    base = f"pretrained={config.model}" + (
        f",gguf_file={config.gguf_file}" if config.gguf_file else ""
    )
    target = base + f",peft={out}" if config.use_lora else f"pretrained={out}"
    command = f"distjudge eval --model hf-judge --model_args {target} --tasks {tasks}"
    return f"saved to {out}\nevaluate: {command}"


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config, training_args = parse(sys.argv[1:] if argv is None else argv)
    out = train(config, training_args)
    print(eval_hint(config, out, config.task))
    return 0
