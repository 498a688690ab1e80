"""Token-budget batches (``--max_tokens_per_batch``): similar-length items packed together.

The readout pads every row of a batch to its longest item, so a fixed number of items per batch
pays for one long item in every row, and its memory follows the longest batch of the epoch. A
token budget caps the padded size (items × longest item) of each batch instead: short items go
many to a batch, long ones few, and a SummEval article of 900 tokens can no longer sit next to
three of 300 and quadruple the step's memory.

Items are ordered by length (ties in a random order drawn per epoch) and packed greedily, so the
number of batches is the same every epoch (the Trainer plans its schedule from it). The order of
the batches is shuffled per epoch from ``(seed, epoch)``, so a resumed run replays it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from distjudge_eval.errors import UserError

if TYPE_CHECKING:  # the readout imports torch: not needed for the checks before the model loads
    from distjudge_eval.readout import EncodedItem

logger = logging.getLogger("distjudge")


def check_budget_settings(max_tokens: int | None, sampling_strategy: str) -> None:
    """A token budget orders the items itself, so it cannot share the run with another
    sampling strategy (checked before the model loads)."""
    if max_tokens is not None and sampling_strategy != "random":
        raise UserError(
            "--max_tokens_per_batch orders the items itself; drop it or "
            f"--train_sampling_strategy {sampling_strategy}"
        )


def item_tokens(item: EncodedItem) -> int:
    """Tokens one item's row can take: its prompt and every label continuation."""
    return len(item.context) + sum(len(c) for c in item.continuations)


def pack(lengths: Sequence[int], max_tokens: int, max_items: int | None = None) -> list[list[int]]:
    """Indices in the given order, cut into consecutive batches whose padded size
    (count × longest) stays within ``max_tokens`` and count within ``max_items``. An item longer
    than the budget gets a batch of its own (it cannot be split)."""
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for index in range(len(lengths)):
        size = lengths[index]
        grown = max(longest, size)
        full = max_items is not None and len(current) >= max_items
        if current and (full or (len(current) + 1) * grown > max_tokens):
            batches.append(current)
            current, grown = [], size
        current.append(index)
        longest = grown
    if current:
        batches.append(current)
    return batches


class EpochClock:
    """The epoch of a :class:`TokenBudgetBatchSampler`, where accelerate looks for it.

    Under ``accelerate launch`` the loader's batch sampler is accelerate's ``BatchSamplerShard``
    around ours, and the epoch the Trainer sets reaches only ``batch_sampler.sampler`` of the
    wrapped one (the place of torch's ``BatchSampler(DistributedSampler)``); without this every
    epoch would replay epoch 0's order on more than one process."""

    def __init__(self) -> None:
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch


class TokenBudgetBatchSampler:
    """A batch sampler (``DataLoader(batch_sampler=...)``) of token-budget batches."""

    def __init__(
        self, lengths: Sequence[int], max_tokens: int, max_items: int | None = None, seed: int = 0
    ) -> None:
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.max_tokens = max_tokens
        self.max_items = max_items
        self.seed = seed
        self.sampler = EpochClock()
        self.oversized = int((self.lengths > max_tokens).sum())
        if self.oversized:
            logger.warning(
                "%d of %d items are longer than --max_tokens_per_batch %d (longest %d tokens): "
                "each goes in a batch of its own",
                self.oversized,
                len(self.lengths),
                max_tokens,
                int(self.lengths.max()),
            )
        self._size = len(self.batches(0))

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    @property
    def epoch(self) -> int:
        return self.sampler.epoch

    def batches(self, epoch: int) -> list[list[int]]:
        """This epoch's batches, in this epoch's order."""
        rng = np.random.default_rng([self.seed, epoch])
        shuffled = rng.permutation(len(self.lengths))
        order = shuffled[np.argsort(self.lengths[shuffled], kind="stable")]
        batches = [
            [int(order[i]) for i in batch]
            for batch in pack(self.lengths[order].tolist(), self.max_tokens, self.max_items)
        ]
        return [batches[i] for i in rng.permutation(len(batches))]

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.batches(self.epoch)

    def __len__(self) -> int:
        return self._size

    @property
    def mean_items(self) -> float:
        """Items per batch on average: the loss of a batch of B items is scaled by B / this, so
        every item weighs the same whatever batch it lands in."""
        return len(self.lengths) / max(self._size, 1)
