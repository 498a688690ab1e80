"""Settings of distjudge training runs; saved beside the adapter so a run can be repeated.

Each dataclass checks its values on construction (``__post_init__``), so a bad number fails as
one line before anything heavy loads, whichever way the settings arrive (flags, ``--config``
YAML, or Python).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from distjudge_eval.errors import UserError

READOUTS = ("full", "first_token")
REWARDS = ("brier", "log")
TIES = ("drop", "half")
SFT_TARGETS = ("dense", "vote")


@dataclass
class ModelSettings:
    """What every distjudge trainer shares: the base model, the data, the LoRA adapter.

    Flag names are ours (``--model``, ``--use_lora``); TRL's spellings for the same settings
    (``--model_name_or_path``, ``--use_peft``) are accepted as aliases.
    """

    task: str = field(
        default="distjudge_snli",
        metadata={"help": "a distjudge lm-eval task, a comma-separated list, or a group"},
    )
    include_path: str | None = field(
        default=None,
        metadata={"help": "a folder of your own lm-eval task YAMLs (as in distjudge eval)"},
    )
    model: str | None = field(
        default=None,
        metadata={
            "help": "HF model dir or id (default: the embedded SmolLM2)",
            "aliases": ["--model_name_or_path"],
        },
    )
    gguf_file: str | None = field(default=None, metadata={"help": "GGUF file inside --model"})
    apply_chat_template: bool = field(
        default=False, metadata={"help": "train on chat-templated prompts (evaluate likewise)"}
    )
    max_train_items: int | None = field(
        default=None, metadata={"help": "cap on train-split items (first N in split order)"}
    )
    use_lora: bool = field(
        default=True,
        metadata={"help": "LoRA adapter; False: full fine-tune", "aliases": ["--use_peft"]},
    )
    lora_r: int = field(default=16, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling alpha"})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout"})
    lora_target_modules: str = field(
        default="q_proj,k_proj,v_proj,o_proj",
        metadata={"help": "comma-separated module names, or all-linear"},
    )
    merge_weights: bool = field(
        default=False, metadata={"help": "also save merged full weights to <output_dir>/merged"}
    )
    data_dir: str | None = field(default=None, metadata={"help": "default: $DISTJUDGE_DATA_DIR"})

    def __post_init__(self) -> None:
        if not self.task_names():
            raise UserError("--task is empty: name a distjudge task, a list or a group")
        _at_least("--max_train_items", self.max_train_items, 1, "a number of train items")
        _at_least("--lora_r", self.lora_r, 1, "a LoRA rank")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise UserError(f"--lora_dropout must lie in [0, 1), got {self.lora_dropout}")

    def task_names(self) -> list[str]:
        return [name.strip() for name in self.task.split(",") if name.strip()]

    def user_paths(self) -> list[str]:
        return [self.include_path] if self.include_path else []

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class DistJudgeConfig(ModelSettings):
    """The distribution objective on the label readout (optimiser settings: TrainingArguments).

    Ablations are settings: single-point α=0, ε=0; without adversary ε=0; without KL α=0;
    without CE α=1.
    """

    alpha: float = field(default=0.8, metadata={"help": "weight of KL(p'‖q); 1-alpha on CE"})
    epsilon: float = field(default=0.25, metadata={"help": "L2 radius of the adversary around p"})
    pgd_steps: int = field(default=5, metadata={"help": "projected gradient ascent steps"})
    pgd_step_size: float = field(default=0.05, metadata={"help": "PGD step size"})
    readout: str = field(default="full", metadata={"help": "full | first_token (as hf-judge)"})
    eval_items: int = field(
        default=0,
        metadata={
            "help": "score this many train-split and test-split items (per task) at each "
            "evaluation: eval_train_kl, eval_test_kl, ... (--eval_strategy epoch|steps; "
            "left at no, it becomes epoch); 0 = off"
        },
    )
    max_tokens_per_batch: int | None = field(
        default=None,
        metadata={
            "help": "token-budget batches: similar-length items packed so that items × longest "
            "item stays within this many tokens (--per_device_train_batch_size still caps the "
            "items); default: a fixed number of items per batch"
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        _at_least("--max_tokens_per_batch", self.max_tokens_per_batch, 1, "a number of tokens")
        if not 0.0 <= self.alpha <= 1.0:
            raise UserError(f"--alpha must lie in [0, 1], got {self.alpha}")
        if not self.epsilon >= 0.0:
            raise UserError(f"--epsilon must be >= 0 (an L2 radius), got {self.epsilon}")
        _at_least("--pgd_steps", self.pgd_steps, 0, "a number of steps")
        if not self.pgd_step_size > 0.0:
            raise UserError(f"--pgd_step_size must be > 0, got {self.pgd_step_size}")
        _one_of("--readout", self.readout, READOUTS)
        _at_least("--eval_items", self.eval_items, 0, "a number of items")


@dataclass
class VerbalizedConfig(ModelSettings):
    """A judge that writes its probabilities (<prob>P(B better)</prob>, or a label
    distribution): SFT on human probabilities, or GRPO on one sparse vote per prompt with a
    proper-scoring-rule reward."""

    task: str = field(
        default="distjudge_mtbench_verbalized",
        metadata={
            "help": "a verbalized task: pairwise (<prob>, e.g. distjudge_mtbench_verbalized) or "
            "a label distribution (e.g. distjudge_snli_verbalized)"
        },
    )
    swap_augment: bool | None = field(
        default=None,
        metadata={
            "help": "also train on every item with slots A and B swapped, from the task's "
            "_swapped twin (default: when the task has one)"
        },
    )
    max_prompt_tokens: int | None = field(
        default=None,
        metadata={"help": "skip (and count) train items whose prompt is longer than this"},
    )
    sft_targets: str = field(
        default="dense",
        metadata={
            "help": "SFT completions: dense (the human p) | vote (the one vote GRPO draws per "
            "item, written with probability 1: the single-point baseline)"
        },
    )
    reward: str = field(default="brier", metadata={"help": "GRPO reward: brier | log"})
    log_clip: float = field(
        default=0.01, metadata={"help": "log score clips the probability to [c, 1-c]"}
    )
    ties: str = field(
        default="drop",
        metadata={"help": "GRPO on a pairwise task, a tie vote: drop (binary labels) | half"},
    )
    label_seed: int = field(
        default=0,
        metadata={"help": "seed of the one vote kept per item (GRPO, --sft_targets vote)"},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.task_names()) != 1:
            raise UserError(f"--task must name one verbalized task, got {self.task!r}")
        _at_least("--max_prompt_tokens", self.max_prompt_tokens, 1, "a number of tokens")
        _one_of("--sft_targets", self.sft_targets, SFT_TARGETS)
        _one_of("--reward", self.reward, REWARDS)
        _one_of("--ties", self.ties, TIES)
        if not 0.0 < self.log_clip < 0.5:
            raise UserError(f"--log_clip must lie in (0, 0.5), got {self.log_clip}")

    def swaps(self) -> bool:
        """Whether training adds each item with A and B swapped (``--swap_augment``, resolved
        against the task's ``_swapped`` twin when unset)."""
        from distjudge_trainer.parsing import resolve_swap_augment

        return resolve_swap_augment(self)


def _at_least(flag: str, value: int | None, low: int, what: str) -> None:
    if value is not None and value < low:
        raise UserError(f"{flag} must be {what} >= {low} (or left unset), got {value}")


def _one_of(flag: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise UserError(f"{flag} must be one of {' | '.join(allowed)}, got {value!r}")
