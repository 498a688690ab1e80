"""A ``transformers.Trainer`` whose loss is the distjudge objective on the shared readout.

``--max_tokens_per_batch`` swaps the stock fixed-size train batches for token-budget ones
(:mod:`distjudge_trainer.batching`); a batch's loss is then scaled by its item count over the
mean, so every item weighs the same in the epoch.

Evaluation (``eval_dataset``, e.g. ``{"train": ..., "test": ...}``) reports, per dataset, the
item means of KL(p‖q), KL(p'‖q), the adversarial gap, CE and accuracy as
``eval_<name>_kl`` etc., from sums kept apart from the training running means.

Everything else (DDP/FSDP/DeepSpeed through ``accelerate launch``, bf16, gradient accumulation
and checkpointing, checkpoint resume, logging) is the stock Trainer's.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

import torch
from transformers import Trainer
from transformers.trainer_utils import EvalLoopOutput

from distjudge_eval.readout import label_scores, pad_token_id
from distjudge_trainer.args import checkpointing_on
from distjudge_trainer.batching import (
    TokenBudgetBatchSampler,
    check_budget_settings,
    item_tokens,
)
from distjudge_trainer.config import DistJudgeConfig
from distjudge_trainer.objective import LossParts, hybrid_loss

logger = logging.getLogger("distjudge")
LOGGED = ("kl", "kl_adv", "ce", "acc")


class DistJudgeTrainer(Trainer):
    def __init__(
        self, *args: Any, dj_config: DistJudgeConfig, first_tokens: list | None = None, **kw: Any
    ) -> None:
        super().__init__(*args, **kw)
        self.dj = dj_config
        self.first_tokens = first_tokens
        self._sums: dict[str, float] = defaultdict(float)  # item-weighted, since the last log
        self._count = 0  # items since the last log
        self.budget_sampler: TokenBudgetBatchSampler | None = None
        self._eval_rows: list[torch.Tensor] = []  # [B, len(LOGGED)] per eval batch

    def scores(self, model: Any, items: list) -> torch.Tensor:
        return label_scores(
            model,
            items,
            mode=self.dj.readout,  # type: ignore[arg-type]
            first_tokens=self.first_tokens,
            pad_id=pad_token_id(self.processing_class),
            # A separate prefix pass needs a KV cache, which gradient checkpointing turns off.
            prefix=[] if checkpointing_on(self.args) else None,
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

    def get_train_dataloader(self) -> Any:
        """The stock loader, or one of token-budget batches (``--max_tokens_per_batch``) with
        the stock loader's ``--dataloader_*`` settings (the stock path accepts a batch sampler
        only if it is rank-aware; ours is sharded by accelerate like any other)."""
        if self.dj.max_tokens_per_batch is None:
            return super().get_train_dataloader()
        # transformers < 5 has group_by_length (a bool) instead of train_sampling_strategy
        strategy = getattr(self.args, "train_sampling_strategy", None) or (
            "group_by_length" if getattr(self.args, "group_by_length", False) else "random"
        )
        check_budget_settings(self.dj.max_tokens_per_batch, strategy)
        from functools import partial

        from torch.utils.data import DataLoader
        from transformers.trainer_utils import seed_worker

        self.budget_sampler = TokenBudgetBatchSampler(
            [item_tokens(ex.item) for ex in self.train_dataset],
            self.dj.max_tokens_per_batch,
            max_items=self._train_batch_size,
            seed=self.args.data_seed if self.args.data_seed is not None else self.args.seed,
        )
        logger.info(
            "token-budget batches: %d items in %d batches of at most %d tokens and %d items "
            "(%.1f items on average)",
            len(self.train_dataset),
            len(self.budget_sampler),
            self.dj.max_tokens_per_batch,
            self._train_batch_size,
            self.budget_sampler.mean_items,
        )
        in_order = {}  # a setting of transformers 5 and torch >= 2.6
        if hasattr(self.args, "dataloader_in_order"):
            in_order["in_order"] = self.args.dataloader_in_order
        loader = DataLoader(
            self.train_dataset,
            batch_sampler=self.budget_sampler,
            collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory,
            persistent_workers=self.args.dataloader_persistent_workers,
            multiprocessing_context=self.args.dataloader_multiprocessing_context,
            prefetch_factor=self.args.dataloader_prefetch_factor,
            worker_init_fn=partial(
                seed_worker,
                num_workers=self.args.dataloader_num_workers,
                rank=self.args.process_index,
            ),
            **in_order,
        )
        return self.accelerator.prepare(loader)

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ):
        parts, scores = self.loss_parts(model, inputs)
        loss = parts.loss
        if model.training:
            n_items = len(inputs["items"])
            for name in LOGGED:
                self._sums[name] += float(getattr(parts, name).detach()) * n_items
            self._count += n_items
            if self.budget_sampler is not None:  # a batch mean would favour small batches
                loss = loss * (n_items / self.budget_sampler.mean_items)
        return (loss, {"scores": scores}) if return_outputs else loss

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
