"""``distjudge grpo`` / ``python -m distjudge_trainer.grpo``: RL for a verbalized judge from sparse
labels (one human vote per prompt), with TRL's ``GRPOTrainer`` and a proper-scoring-rule reward on
the written probability or distribution (``--reward brier|log``, see ``distjudge_trainer.rewards``).
A pairwise item is shown in both slot orders with the vote flipped for the swapped one
(``--swap_augment``).
Flags: :class:`VerbalizedConfig` plus every ``trl.GRPOConfig`` / ``TrainingArguments`` flag, in
either spelling, or from ``--config file.yaml`` (command-line flags win).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from distjudge_eval.errors import UserError
from distjudge_trainer.config import VerbalizedConfig
from distjudge_trainer.sft import prepare, run_cli

logger = logging.getLogger("distjudge")


def train_grpo(config: VerbalizedConfig, grpo_args: Any) -> Path:
    from datasets import Dataset
    from trl import GRPOTrainer

    from distjudge_eval.verbalized import stop_sequences
    from distjudge_trainer.cli import save_run
    from distjudge_trainer.rewards import make_reward_fn
    from distjudge_trainer.verbal_data import build_prompts, sparse_dataset, verbal_label_set

    model, tokenizer, docs = prepare(config, grpo_args, "distjudge grpo")
    prompts, gen_kwargs = build_prompts(
        docs, tokenizer, config.max_train_items, config.apply_chat_template,
        config.swaps(), config.max_prompt_tokens,
    )  # fmt: skip
    rows, dropped = sparse_dataset(prompts, config.label_seed, config.ties)
    if not rows:
        raise UserError("no GRPO prompts left: every drawn vote was a tie (try --ties half)")
    check_prompt_count(len(rows), grpo_args)
    until = stop_sequences(gen_kwargs)
    if grpo_args.max_completion_length is None:  # the reply budget the harness gives the judge
        grpo_args.max_completion_length = int(gen_kwargs.get("max_gen_toks") or 256)
    logger.info("GRPO on %d prompts (%d tie votes dropped), reward %s, stops %s, completions of "
                "<= %d tokens", len(rows), dropped, config.reward, until,
                grpo_args.max_completion_length)  # fmt: skip
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[
            make_reward_fn(config.reward, until, config.log_clip, verbal_label_set(docs[0].task))
        ],
        args=grpo_args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
    )
    trainer.train(resume_from_checkpoint=grpo_args.resume_from_checkpoint)
    return save_run(trainer, tokenizer, config, grpo_args)


def check_prompt_count(n_prompts: int, grpo_args: Any) -> None:
    """TRL samples whole generation batches of distinct prompts and drops the rest of an epoch:
    with fewer prompts than one batch it would train zero steps and save an untouched adapter."""
    per_batch = grpo_args.generation_batch_size // grpo_args.num_generations
    if n_prompts < per_batch:
        raise UserError(
            f"GRPO has {n_prompts} prompts but one generation batch takes {per_batch} "
            f"(generation_batch_size {grpo_args.generation_batch_size} / num_generations "
            f"{grpo_args.num_generations}): add items (--max_train_items) or lower "
            "--per_device_train_batch_size"
        )
    if n_prompts % per_batch:
        logger.warning("GRPO: each epoch leaves out %d of %d prompts (TRL samples whole "
                       "generation batches of %d)", n_prompts % per_batch, n_prompts,
                       per_batch)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(argv, "distjudge grpo", __doc__, "DistJudgeGRPOConfig", train_grpo)


if __name__ == "__main__":
    raise SystemExit(main())
