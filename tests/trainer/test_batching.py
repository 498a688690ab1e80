"""Token-budget batches (--max_tokens_per_batch): the packing against a brute-force search and
the sampler's epochs (the trainer's side: test_trainer_unit.py)."""

from __future__ import annotations

import functools
import random

import numpy as np
import pytest

from distjudge_trainer.batching import TokenBudgetBatchSampler, pack


def fewest_batches(lengths: list[int], budget: int, max_items: int | None) -> int:
    """Brute force: the fewest consecutive batches, each within the budget (or a lone item)."""

    @functools.cache
    def best(start: int) -> int:
        if start == len(lengths):
            return 0
        options = []
        for end in range(start + 1, len(lengths) + 1):
            size = end - start
            fits = size * max(lengths[start:end]) <= budget
            if size > 1 and (not fits or (max_items is not None and size > max_items)):
                break
            options.append(1 + best(end))
        return min(options)

    return best(0)


@pytest.mark.parametrize("trial", range(200))
def test_pack_is_valid_and_as_few_batches_as_brute_force(trial: int) -> None:
    rng = random.Random(trial)
    lengths = sorted(rng.randint(1, 60) for _ in range(rng.randint(1, 12)))
    budget = rng.randint(20, 150)
    max_items = rng.choice([None, 2, 3, 5])
    batches = pack(lengths, budget, max_items)
    assert [i for b in batches for i in b] == list(range(len(lengths)))  # each once, in order
    for batch in batches:
        if len(batch) > 1:
            assert len(batch) * max(lengths[i] for i in batch) <= budget
            assert max_items is None or len(batch) <= max_items
    assert len(batches) == fewest_batches(lengths, budget, max_items)


def test_sampler_epochs_cover_every_item_once_in_the_same_number_of_batches() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(50, 900, size=301).tolist()
    sampler = TokenBudgetBatchSampler(lengths, max_tokens=2000, max_items=16, seed=3)
    epochs = []
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler)
        assert sorted(i for b in batches for i in b) == list(range(301))
        assert all(len(b) * max(lengths[i] for i in b) <= 2000 for b in batches)
        epochs.append(batches)
    assert epochs[0] != epochs[1]  # a new order (and new ties) each epoch
    sampler.set_epoch(1)
    assert list(sampler) == epochs[1]  # a resumed run replays its epoch
    assert sampler.mean_items == pytest.approx(301 / len(sampler))


def test_budget_batches_pad_far_less_than_fixed_batches_of_the_same_mean_size() -> None:
    rng = np.random.default_rng(1)
    lengths = rng.lognormal(6, 0.5, size=1000).astype(int).tolist()  # a long tail (SummEval)
    sampler = TokenBudgetBatchSampler(lengths, max_tokens=4096, seed=0)
    budget = [b for b in sampler]
    size = round(sampler.mean_items)
    order = rng.permutation(1000)
    fixed = [order[i : i + size].tolist() for i in range(0, 1000, size)]

    def padded(batches: list) -> int:
        return sum(len(b) * max(lengths[i] for i in b) for b in batches)

    assert padded(budget) < 0.8 * padded(fixed)
    assert max(len(b) * max(lengths[i] for i in b) for b in budget) <= 4096


def test_oversized_items_get_a_batch_of_their_own_and_are_counted(caplog) -> None:
    sampler = TokenBudgetBatchSampler([10, 500, 12, 700], max_tokens=100)
    assert sampler.oversized == 2
    assert sorted(sorted(b) for b in sampler) == [[0, 2], [1], [3]]
    assert "2 of 4 items are longer than --max_tokens_per_batch 100" in caplog.text


@pytest.mark.parametrize("processes", [2, 3])
def test_sharded_loader_reaches_the_epoch_and_covers_every_batch(processes: int) -> None:
    """Under ``accelerate launch`` the Trainer's ``set_epoch`` goes to accelerate's sharded
    loader, whose batch sampler wraps ours (``BatchSamplerShard``): the epoch must still reach
    our order, and the ranks together must see every batch of that epoch (the last round topped
    up from the first batches, as accelerate does for any sampler)."""
    from accelerate.data_loader import prepare_data_loader
    from torch.utils.data import DataLoader

    lengths = [random.Random(i).randint(3, 40) for i in range(37)]
    seen: dict[int, list[list[int]]] = {}
    for epoch in (0, 1):
        plan = TokenBudgetBatchSampler(lengths, max_tokens=90, max_items=6, seed=5).batches(epoch)
        rounds = -(-len(plan) // processes)
        ranks = []
        for rank in range(processes):
            sampler = TokenBudgetBatchSampler(lengths, max_tokens=90, max_items=6, seed=5)
            loader = DataLoader(list(range(len(lengths))), batch_sampler=sampler)
            shard = prepare_data_loader(
                loader, num_processes=processes, process_index=rank, put_on_device=False
            )
            shard.set_epoch(epoch)
            ranks.append([batch.tolist() for batch in shard])
            assert len(ranks[-1]) == len(shard) == rounds
        dealt = [ranks[i % processes][i // processes] for i in range(rounds * processes)]
        assert dealt[: len(plan)] == plan  # round robin over this epoch's batches, in order
        assert dealt[len(plan) :] == plan[: len(dealt) - len(plan)]
        seen[epoch] = plan
    assert seen[0] != seen[1]
