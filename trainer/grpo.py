"""``distjudge grpo`` / ``python -m trainer.grpo``: RL for a verbalized judge from sparse binary
labels (one human vote per prompt), with TRL's ``GRPOTrainer`` and a proper-scoring-rule reward
on the written probability (``--reward brier|log``, see ``trainer.rewards``). Each item is shown
in both slot orders with the vote flipped for the swapped one (``--swap_augment``). Flags:
:class:`VerbalizedConfig` plus every ``trl.GRPOConfig`` / ``TrainingArguments`` flag.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trainer.config import VerbalizedConfig
from trainer.sft import prepare, run_cli

logger = logging.getLogger("distjudge")

GRPO_DEFAULTS = {
    "learning_rate": "1e-5",
    "num_train_epochs": "1",
    "per_device_train_batch_size": "8",
    "num_generations": "4",
    "max_completion_length": "8",  # "0.73</prob>" is 5-6 tokens
    "logging_steps": "5",
    "save_strategy": "no",
    "report_to": "none",
    "gradient_checkpointing": "False",
    "bf16": "False",
}


def train_grpo(config: VerbalizedConfig, grpo_args: Any) -> Path:
    from datasets import Dataset
    from trl import GRPOTrainer

    from distjudge_eval.verbalized import stop_sequences
    from trainer.cli import save_run
    from trainer.rewards import make_reward_fn
    from trainer.verbal_data import build_prompts, sparse_dataset

    model, tokenizer = prepare(config)
    prompts, gen_kwargs = build_prompts(
        config.task, tokenizer, config.max_train_items, config.apply_chat_template,
        config.swap_augment, config.max_prompt_tokens,
    )  # fmt: skip
    rows, dropped = sparse_dataset(prompts, config.label_seed, config.ties)
    if not rows:
        raise ValueError("no GRPO prompts left (every drawn vote was a tie?)")
    until = stop_sequences(gen_kwargs)
    logger.info("GRPO on %d prompts (%d tie votes dropped), reward %s, stops %s", len(rows),
                dropped, config.reward, until)  # fmt: skip
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[make_reward_fn(config.reward, until, config.log_clip)],
        args=grpo_args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
    )
    trainer.train(resume_from_checkpoint=grpo_args.resume_from_checkpoint)
    return save_run(trainer, tokenizer, config, grpo_args)


def main(argv: Sequence[str] | None = None) -> int:
    from trl import GRPOConfig

    return run_cli(argv, GRPO_DEFAULTS, GRPOConfig, train_grpo)


if __name__ == "__main__":
    raise SystemExit(main())
