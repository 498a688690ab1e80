"""``distjudge sft`` / ``python -m distjudge_trainer.sft``: supervised fine-tuning of a verbalized
judge on dense probabilistic targets (the reply is the human P(B ≻ A), e.g. ``0.67</prob>``, or
the human label distribution, e.g. ``entailment: 0.60, neutral: 0.40, contradiction: 0.00``), with
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
    docs = load_verbal_docs(config.task, config.swaps(), config.user_paths(), config.data_dir)
    model, tokenizer = load_model_and_tokenizer(config)
    return model, tokenizer, docs


def sft_rows(config: VerbalizedConfig, tokenizer: Any, docs: Any = None) -> list[dict[str, str]]:
    """Prompt / completion pairs: the completion is the human probability written the way the
    task's prompt asks for it (and the harness parses it); with ``--sft_targets vote``, the one
    vote per item that GRPO would draw, written with probability 1 (a dropped tie vote drops
    the prompt, as in GRPO)."""
    from distjudge_eval.verbalized import distribution_text, target_text
    from distjudge_trainer.verbal_data import (
        build_prompts,
        load_verbal_docs,
        sparse_dataset,
        verbal_label_set,
    )

    if docs is None:
        docs = load_verbal_docs(config.task, config.swaps(), config.user_paths(), config.data_dir)
    label_set = verbal_label_set(docs[0].task)
    prompts, _ = build_prompts(
        docs, tokenizer, config.max_train_items, config.apply_chat_template,
        config.swaps(), config.max_prompt_tokens,
    )  # fmt: skip
    if config.sft_targets == "dense":
        targets = [(vp.prompt, vp.prob_b if label_set is None else vp.p) for vp in prompts]
    else:
        votes, _ = sparse_dataset(prompts, config.label_seed, config.ties)
        targets = [(r["prompt"], _one_hot(r["y"], label_set)) for r in votes]

    def write(target: Any) -> str:
        return target_text(target) if label_set is None else distribution_text(target, label_set)

    return [{"prompt": prompt, "completion": write(t)} for prompt, t in targets]


def _one_hot(y: float | int, label_set: Any) -> float | list[float]:
    """A drawn vote as the target a judge writes: P(B better) = y (pairwise), or the vote's
    label with probability 1."""
    if label_set is None:
        return float(y)
    return [1.0 if i == int(y) else 0.0 for i in range(len(label_set))]


def train_sft(config: VerbalizedConfig, sft_args: Any) -> Path:
    from datasets import Dataset
    from trl import SFTTrainer

    from distjudge_trainer.cli import save_run

    model, tokenizer, docs = prepare(config, sft_args, "distjudge sft")
    rows = sft_rows(config, tokenizer, docs)
    logger.info("SFT on %d prompts of %s (targets: %s, swap augmentation: %s)", len(rows),
                config.task, config.sft_targets, config.swap_augment)  # fmt: skip
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
        tasks = f"{config.task},{config.task}_swapped" if config.swaps() else config.task
        print(eval_hint(config, out, tasks))
        return 0

    return run_main(prog, body)


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(argv, "distjudge sft", __doc__, "DistJudgeSFTConfig", train_sft)


if __name__ == "__main__":
    raise SystemExit(main())
