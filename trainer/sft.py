"""``distjudge sft`` / ``python -m trainer.sft``: supervised fine-tuning of a verbalized judge on
dense probabilistic targets (the reply is the human P(B ≻ A), e.g. ``0.67</prob>``), with TRL's
``SFTTrainer`` (loss on the completion only). Flags: :class:`VerbalizedConfig` plus every
``trl.SFTConfig`` / ``TrainingArguments`` flag.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trainer.config import VerbalizedConfig

logger = logging.getLogger("distjudge")

SFT_DEFAULTS = {
    "learning_rate": "2e-4",
    "num_train_epochs": "1",
    "per_device_train_batch_size": "4",
    "logging_steps": "10",
    "save_strategy": "no",
    "report_to": "none",
    "gradient_checkpointing": "False",
    "max_length": "8192",  # MT-Bench prompts run to 2k tokens: never cut the completion off
    "bf16": "False",
}


def prepare(config: VerbalizedConfig) -> tuple[Any, Any]:
    from distjudge_eval.settings import DATA_DIR_ENV
    from trainer.cli import load_model_and_tokenizer

    if config.data_dir:
        os.environ[DATA_DIR_ENV] = str(Path(config.data_dir).expanduser().resolve())
    return load_model_and_tokenizer(config)


def sft_rows(config: VerbalizedConfig, tokenizer: Any) -> list[dict[str, str]]:
    from distjudge_eval.verbalized import target_text
    from trainer.verbal_data import build_prompts

    prompts, _ = build_prompts(
        config.task, tokenizer, config.max_train_items, config.apply_chat_template,
        config.swap_augment, config.max_prompt_tokens,
    )  # fmt: skip
    return [{"prompt": vp.prompt, "completion": target_text(vp.prob_b)} for vp in prompts]


def train_sft(config: VerbalizedConfig, sft_args: Any) -> Path:
    from datasets import Dataset
    from trl import SFTTrainer

    from trainer.cli import save_run

    model, tokenizer = prepare(config)
    rows = sft_rows(config, tokenizer)
    logger.info("SFT on %d prompts of %s (swap augmentation: %s)", len(rows), config.task,
                config.swap_augment)  # fmt: skip
    trainer = SFTTrainer(
        model=model,
        args=sft_args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
    )
    trainer.train(resume_from_checkpoint=sft_args.resume_from_checkpoint)
    return save_run(trainer, tokenizer, config, sft_args)


def run_cli(
    argv: Sequence[str] | None, defaults: dict[str, str], trl_config: type, train_fn: Any
) -> int:
    """Parse VerbalizedConfig + a TRL config, train, print the eval command (SFT and GRPO)."""
    from transformers import HfArgumentParser

    from trainer.cli import eval_hint, with_defaults

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = with_defaults(sys.argv[1:] if argv is None else argv, defaults)
    config, trl_args = HfArgumentParser((VerbalizedConfig, trl_config)).parse_args_into_dataclasses(
        args
    )
    out = train_fn(config, trl_args)
    print(eval_hint(config, out, f"{config.task},{config.task}_swapped"))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from trl import SFTConfig

    return run_cli(argv, SFT_DEFAULTS, SFTConfig, train_sft)


if __name__ == "__main__":
    raise SystemExit(main())
