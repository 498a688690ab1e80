"""A ``transformers.Trainer`` whose loss is the distjudge objective on the shared readout.

Everything else (DDP/FSDP/DeepSpeed through ``accelerate launch``, bf16, gradient accumulation
and checkpointing, checkpoint resume, logging) is the stock Trainer's.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch
from transformers import Trainer

from distjudge_eval.readout import label_scores, pad_token_id
from distjudge_trainer.config import DistJudgeConfig
from distjudge_trainer.objective import hybrid_loss

LOGGED = ("kl", "kl_adv", "ce", "acc")


class DistJudgeTrainer(Trainer):
    def __init__(
        self, *args: Any, dj_config: DistJudgeConfig, first_tokens: list | None = None, **kw: Any
    ) -> None:
        super().__init__(*args, **kw)
        self.dj = dj_config
        self.first_tokens = first_tokens
        self._sums: dict[str, float] = defaultdict(float)
        self._count = 0

    def scores(self, model: Any, items: list) -> torch.Tensor:
        return label_scores(
            model,
            items,
            mode=self.dj.readout,  # type: ignore[arg-type]
            first_tokens=self.first_tokens,
            pad_id=pad_token_id(self.processing_class),
            # A separate prefix pass needs a KV cache, which gradient checkpointing turns off.
            prefix=[] if self.args.gradient_checkpointing else None,
        ).scores

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ):
        scores = self.scores(model, inputs["items"])
        parts = hybrid_loss(
            scores,
            inputs["p"],
            inputs["target"],
            alpha=self.dj.alpha,
            epsilon=self.dj.epsilon,
            pgd_steps=self.dj.pgd_steps,
            pgd_step_size=self.dj.pgd_step_size,
        )
        if model.training:
            for name in LOGGED:
                self._sums[name] += float(getattr(parts, name).detach())
            self._count += 1
        return (parts.loss, {"scores": scores}) if return_outputs else parts.loss

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        """Add running means of KL(p‖q), KL(p'‖q), the adversarial gap, CE and accuracy."""
        if self._count and "loss" in logs:
            means = {name: self._sums[name] / self._count for name in LOGGED}
            logs.update({f"train_{k}": round(v, 6) for k, v in means.items()})
            logs["train_adv_gap"] = round(means["kl_adv"] - means["kl"], 6)
            self._sums.clear()
            self._count = 0
        super().log(logs, *args, **kwargs)
