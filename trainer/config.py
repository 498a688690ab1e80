"""Settings of distjudge training runs; saved beside the adapter so a run can be repeated."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class ModelSettings:
    """What every distjudge trainer shares: the base model, the data, the LoRA adapter."""

    task: str = field(default="distjudge_snli", metadata={"help": "a distjudge lm-eval task"})
    model: str | None = field(
        default=None, metadata={"help": "HF model dir or id (default: the embedded SmolLM2)"}
    )
    gguf_file: str | None = field(default=None, metadata={"help": "GGUF file inside --model"})
    apply_chat_template: bool = field(
        default=False, metadata={"help": "train on chat-templated prompts (evaluate likewise)"}
    )
    max_train_items: int | None = field(
        default=None, metadata={"help": "cap on train-split items (first N in split order)"}
    )
    use_lora: bool = field(default=True, metadata={"help": "LoRA adapter; False: full fine-tune"})
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: str = field(
        default="q_proj,k_proj,v_proj,o_proj",
        metadata={"help": "comma-separated module names, or all-linear"},
    )
    merge_weights: bool = field(
        default=False, metadata={"help": "also save merged full weights to <output_dir>/merged"}
    )
    data_dir: str | None = field(default=None, metadata={"help": "default: $DISTJUDGE_DATA_DIR"})

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


@dataclass
class VerbalizedConfig(ModelSettings):
    """A judge that writes <prob>P(B better)</prob>: SFT on human probabilities, or GRPO on
    one sparse binary vote per prompt with a proper-scoring-rule reward."""

    task: str = field(
        default="distjudge_mtbench_verbalized",
        metadata={"help": "a verbalized pairwise task (its _swapped twin is used to augment)"},
    )
    swap_augment: bool = field(
        default=True, metadata={"help": "also train on every item with slots A and B swapped"}
    )
    max_prompt_tokens: int | None = field(
        default=None,
        metadata={"help": "skip (and count) train items whose prompt is longer than this"},
    )
    reward: str = field(default="brier", metadata={"help": "GRPO reward: brier | log"})
    log_clip: float = field(
        default=0.01, metadata={"help": "log score clips the probability to [c, 1-c]"}
    )
    ties: str = field(
        default="drop", metadata={"help": "GRPO votes for a tie: drop (binary labels) | half"}
    )
    label_seed: int = field(default=0, metadata={"help": "seed of the one vote kept per item"})
