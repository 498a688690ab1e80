"""TRL's ``SFTConfig`` / ``GRPOConfig`` with distjudge's defaults declared as field defaults
(so ``--help`` shows them and ``--config`` / dashed flags override them). Importing this
module needs TRL (the ``train`` extra)."""

from __future__ import annotations

from dataclasses import dataclass, field

from trl import GRPOConfig, SFTConfig

from distjudge_trainer.args import SharedDefaults


@dataclass
class VerbalDefaults(SharedDefaults):
    """What SFT and GRPO of a verbalized judge share (mixed in first; see SharedDefaults)."""

    num_train_epochs: float = field(default=1.0, metadata={"help": "training epochs"})
    save_strategy: str = field(
        default="no", metadata={"help": "checkpoint schedule: no | steps | epoch | best"}
    )
    gradient_checkpointing: bool | None = field(
        default=None,  # TRL says True; transformers' own default (off, and no deprecation warning)
        metadata={"help": "deprecated alias of --activation_checkpointing", "nargs": "?"},
    )
    bf16: bool | None = field(default=False, metadata={"help": "bfloat16 mixed precision"})


@dataclass
class DistJudgeSFTConfig(VerbalDefaults, SFTConfig):
    """Every ``trl.SFTConfig`` flag; the defaults below are distjudge's for verbalized SFT."""

    learning_rate: float = field(default=2e-4, metadata={"help": "initial AdamW learning rate"})
    per_device_train_batch_size: int = field(
        default=4, metadata={"help": "prompts per device per step"}
    )
    logging_steps: float = field(default=10, metadata={"help": "log every N steps"})
    max_length: int | None = field(
        default=8192,
        metadata={"help": "MT-Bench prompts run to 2k tokens: never cut the completion off"},
    )


@dataclass
class DistJudgeGRPOConfig(VerbalDefaults, GRPOConfig):
    """Every ``trl.GRPOConfig`` flag; the defaults below are distjudge's for verbalized GRPO."""

    learning_rate: float = field(default=1e-5, metadata={"help": "initial AdamW learning rate"})
    per_device_train_batch_size: int = field(
        default=8, metadata={"help": "completions per device per step"}
    )
    num_generations: int | None = field(
        default=4, metadata={"help": "completions sampled per prompt (the GRPO group)"}
    )
    max_completion_length: int | None = field(
        default=None,
        metadata={
            "help": "tokens per completion (default: the task's max_gen_toks, the budget the "
            'harness gives the reply: 8 for "0.73</prob>", 32 for an NLI distribution)'
        },
    )
    logging_steps: float = field(default=5, metadata={"help": "log every N steps"})
