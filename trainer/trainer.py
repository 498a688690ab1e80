"""A ``transformers.Trainer`` whose loss is the distjudge objective on the shared readout.

Evaluation (``eval_dataset``, e.g. ``{"train": ..., "test": ...}``) reports, per dataset, the
item means of KL(p‖q), KL(p'‖q), the adversarial gap, CE and accuracy as
``eval_<name>_kl`` etc., from sums kept apart from the training running means.

Everything else (DDP/FSDP/DeepSpeed through ``accelerate launch``, bf16, gradient accumulation
and checkpointing, checkpoint resume, logging) is the stock Trainer's.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch
from transformers import Trainer
from transformers.trainer_utils import EvalLoopOutput

from distjudge_eval.readout import label_scores, pad_token_id
from distjudge_trainer.config import DistJudgeConfig
from distjudge_trainer.objective import LossParts, hybrid_loss

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
        self._eval_rows: list[torch.Tensor] = []  # [B, len(LOGGED)] per eval batch

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

    def loss_parts(self, model: Any, inputs: dict[str, Any]) -> tuple[LossParts, torch.Tensor]:
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
        return parts, scores

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ):
        parts, scores = self.loss_parts(model, inputs)
        if model.training:
            for name in LOGGED:
                self._sums[name] += float(getattr(parts, name).detach())
            self._count += 1
        return (parts.loss, {"scores": scores}) if return_outputs else parts.loss

    def prediction_step(
        self,
        model: Any,
        inputs: dict[str, Any],
        prediction_loss_only: bool,
        ignore_keys: list[str] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """One evaluation batch: its loss, and each item's parts kept for the metrics.

        The stock step would call ``model(**inputs)`` (our batches hold encoded items, not
        input_ids). Outputs, when asked for (``predict``): the label scores [B, K] as
        predictions and p [B, K] as label_ids."""
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            parts, scores = self.loss_parts(model, inputs)
        rows = torch.stack([parts.per_item[name] for name in LOGGED], dim=-1).detach()
        # every process gets every item once (the padding of an uneven last batch dropped)
        self._eval_rows.append(self.accelerator.gather_for_metrics(rows).cpu())
        loss = parts.loss.detach()
        if prediction_loss_only:
            return loss, None, None
        return loss, scores.detach(), inputs["p"]

    def evaluation_loop(
        self,
        dataloader: Any,
        description: str,
        prediction_loss_only: bool | None = None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
    ) -> EvalLoopOutput:
        """The stock loop, plus ``<prefix>_kl``, ``_kl_adv``, ``_adv_gap``, ``_ce``, ``_acc``
        (means over the items, not over batches) and ``_items`` (how many were scored)."""
        self._eval_rows = []
        try:
            output = super().evaluation_loop(
                dataloader, description, prediction_loss_only, ignore_keys, metric_key_prefix
            )
            if self._eval_rows:
                rows = torch.cat(self._eval_rows).double()
                means = dict(zip(LOGGED, rows.mean(0).tolist(), strict=True))
                means["adv_gap"] = means["kl_adv"] - means["kl"]
                for name, value in means.items():
                    output.metrics[f"{metric_key_prefix}_{name}"] = round(value, 6)
                output.metrics[f"{metric_key_prefix}_items"] = len(rows)
        finally:
            self._eval_rows = []
        return output

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        """Add running means of KL(p‖q), KL(p'‖q), the adversarial gap, CE and accuracy."""
        if self._count and "loss" in logs:
            means = {name: self._sums[name] / self._count for name in LOGGED}
            logs.update({f"train_{k}": round(v, 6) for k, v in means.items()})
            logs["train_adv_gap"] = round(means["kl_adv"] - means["kl"], 6)
            self._sums.clear()
            self._count = 0
        super().log(logs, *args, **kwargs)
