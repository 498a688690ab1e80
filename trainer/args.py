"""``TrainingArguments`` with distjudge's defaults declared as field defaults.

Declaring them here (as TRL's ``SFTConfig`` does for its own) rather than injecting flags into
argv means ``--help`` shows the defaults that apply, a ``--config`` YAML file and the dashed
spellings (``--num-train-epochs``) override them like any other flag, and Python callers that
build the arguments directly get the same run as the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from transformers import TrainingArguments


def checkpointing_on(args: Any) -> bool:
    """Whether activations are recomputed in the backward pass. transformers 5 renamed
    ``gradient_checkpointing`` to ``activation_checkpointing`` (the old name goes in v6) and
    older releases only have the old one: read the new name where it exists."""
    on = getattr(args, "activation_checkpointing", None)
    return bool(getattr(args, "gradient_checkpointing", False) if on is None else on)


def accelerator_present() -> bool:
    """Pinned host memory only speeds copies to an accelerator, and torch warns on every
    DataLoader that asks for it without one (so on every CPU run): pin only where it helps."""
    import torch

    present = getattr(torch, "accelerator", None)  # torch >= 2.6
    return bool(present.is_available()) if present is not None else torch.cuda.is_available()


@dataclass
class SharedDefaults:
    """Defaults all three trainers (train, sft, grpo) share, declared once.

    Mixed in *before* transformers' or TRL's config class: a dataclass collects fields from its
    bases last-to-first, so these defaults replace the library's while each field keeps its
    place (and so its position in ``--help``).
    """

    report_to: None | str | list[str] = field(  # noqa: RUF036 (the parser needs this order)
        default="none", metadata={"help": "integrations to log to (none, all, wandb, ...)"}
    )
    dataloader_pin_memory: bool | None = field(
        default=None,  # transformers says True; resolved in __post_init__
        metadata={"help": "pin host memory for copies to the accelerator (default: if any)"},
    )

    def __post_init__(self) -> None:
        if self.dataloader_pin_memory is None:
            self.dataloader_pin_memory = accelerator_present()
        super().__post_init__()  # the library's config class, next in the subclass's MRO


@dataclass
class DistJudgeTrainingArguments(SharedDefaults, TrainingArguments):
    """Every ``transformers.TrainingArguments`` flag; the defaults below are distjudge's."""

    learning_rate: float = field(default=5e-5, metadata={"help": "initial AdamW learning rate"})
    num_train_epochs: float = field(default=2.0, metadata={"help": "training epochs"})
    per_device_train_batch_size: int = field(
        default=4, metadata={"help": "items per device per step"}
    )
    logging_steps: float = field(
        default=10, metadata={"help": "log every N steps (a float < 1: a fraction of the run)"}
    )
    save_strategy: str = field(
        default="epoch", metadata={"help": "checkpoint schedule: no | steps | epoch | best"}
    )
    remove_unused_columns: bool = field(
        default=False,
        metadata={"help": "keep False: the collator needs every field of a training example"},
    )
    optim: str = field(default="adamw_torch", metadata={"help": "optimizer (see transformers)"})
