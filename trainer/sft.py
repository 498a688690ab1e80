"""``distjudge sft`` / ``python -m distjudge_trainer.sft``: supervised fine-tuning of a verbalized
judge on dense probabilistic targets (the reply is the human P(B ≻ A), e.g. ``0.67</prob>``), with
TRL's ``SFTTrainer`` (loss on the completion only). Flags: :class:`VerbalizedConfig` plus every
``trl.SFTConfig`` / ``TrainingArguments`` flag, in either spelling, or from ``--config file.yaml``
(command-line flags win).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from distjudge_trainer.config import VerbalizedConfig

logger = logging.getLogger("distjudge")


def prepare(config: VerbalizedConfig, trl_args: Any, command: str) -> tuple[Any, Any, list]:
    """Checks and train docs first (fast failures), then the model and tokenizer."""
    from distjudge_trainer.cli import load_model_and_tokenizer, preflight
    from distjudge_trainer.verbal_data import load_verbal_docs

    preflight(config, trl_args, command)
    docs = load_verbal_docs(config.task, config.swap_augment, config.user_paths(), config.data_dir)
    model, tokenizer = load_model_and_tokenizer(config)
    return model, tokenizer, docs


def sft_rows(config: VerbalizedConfig, tokenizer: Any, docs: Any = None) -> list[dict[str, str]]:
    from distjudge_eval.verbalized import target_text
    from distjudge_trainer.verbal_data import build_prompts

    prompts, _ = build_prompts(
        config.task if docs is None else docs, tokenizer, config.max_train_items,
        config.apply_chat_template, config.swap_augment, config.max_prompt_tokens,
        config.user_paths(), config.data_dir,
    )  # fmt: skip
    return [{"prompt": vp.prompt, "completion": target_text(vp.prob_b)} for vp in prompts]


def train_sft(config: VerbalizedConfig, sft_args: Any) -> Path:
    from datasets import Dataset
    from trl import SFTTrainer

    from distjudge_trainer.cli import save_run

    model, tokenizer, docs = prepare(config, sft_args, "distjudge sft")
    rows = sft_rows(config, tokenizer, docs)
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


def parse_verbal(
    argv: Sequence[str], prog: str, doc: str | None, trl_config: str
) -> tuple[VerbalizedConfig, Any]:
    """Flags (and ``--config file.yaml``) into VerbalizedConfig and our TRL config class
    ``trl_config`` (a name in :mod:`distjudge_trainer.trl_args`, imported once TRL is known to be
    there, so a missing extra is one line)."""
    from distjudge_trainer.parsing import parse_args, require

    require(["trl"], prog)
    from distjudge_trainer import trl_args

    types = (VerbalizedConfig, getattr(trl_args, trl_config))
    config, train_args = parse_args(argv, types, prog, doc)
    return config, train_args


def run_cli(
    argv: Sequence[str] | None, prog: str, doc: str | None, trl_config: str, train_fn: Callable
) -> int:
    """Parse (:func:`parse_verbal`), train, print the eval command (SFT and GRPO)."""
    from distjudge_trainer.cli import eval_hint
    from distjudge_trainer.parsing import early_checks, run_main

    def body() -> int:
        args = sys.argv[1:] if argv is None else list(argv)
        early_checks(args, VerbalizedConfig, prog)
        config, train_args = parse_verbal(args, prog, doc, trl_config)
        out = train_fn(config, train_args)
        print(eval_hint(config, out, f"{config.task},{config.task}_swapped"))
        return 0

    return run_main(prog, body)


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(argv, "distjudge sft", __doc__, "DistJudgeSFTConfig", train_sft)


if __name__ == "__main__":
    raise SystemExit(main())
