"""Step plan, per-epoch data order and learning-rate schedule."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from compeffdist.training.backends import build_scheduler
from compeffdist.training.plan import epoch_micro_batches, epoch_order, make_plan

pytestmark = pytest.mark.unit


def test_plan_counts_whole_steps_per_worker():
    plan = make_plan(rows=103, workers=2, micro_batch_size=4, accumulation=3, epochs=4, max_steps=None)
    # 51 rows per worker -> 12 micro batches -> 4 optimizer steps per epoch
    assert (plan.micro_batches_per_epoch, plan.steps_per_epoch, plan.total_steps) == (12, 4, 16)
    assert make_plan(103, 2, 4, 3, 4, max_steps=6).total_steps == 6


def test_plan_refuses_data_that_cannot_fill_a_step():
    with pytest.raises(ValueError, match="cannot fill one optimizer step"):
        make_plan(rows=10, workers=2, micro_batch_size=2, accumulation=4, epochs=1, max_steps=None)


def lr_factors(kind: str, warmup_steps: int, total_steps: int) -> list[float]:
    """The multiplier of the peak learning rate at optimizer steps 0..total_steps (transformers' schedule)."""
    import torch

    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=2.0)
    scheduler = build_scheduler(optimizer, kind, warmup_steps, total_steps)
    factors = []
    for _ in range(total_steps + 1):
        factors.append(scheduler.get_last_lr()[0] / 2.0)
        optimizer.step()
        scheduler.step()
    return factors


def test_cosine_without_warmup_starts_at_full_lr_and_decays_to_zero():
    values = lr_factors("cosine", warmup_steps=0, total_steps=100)
    assert values[0] == 1.0 and math.isclose(values[50], 0.5) and values[100] == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in itertools.pairwise(values))


def test_warmup_then_linear_and_constant():
    linear = lr_factors("linear", warmup_steps=4, total_steps=14)
    assert linear[:5] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert linear[9] == pytest.approx(0.5)
    constant = lr_factors("constant", 2, 10)
    assert constant[:3] == [0.0, 0.5, 1.0] and constant[9] == 1.0


def test_each_epoch_reshuffles_the_shard_deterministically():
    orders = [epoch_order(34, rank=1, seed=7, epoch=e) for e in range(3)]
    for order in orders:
        assert sorted(order.tolist()) == list(range(34))  # a permutation of the worker's shard positions
    assert not np.array_equal(orders[0], orders[1])  # a new order every epoch
    assert np.array_equal(epoch_order(34, rank=1, seed=7, epoch=2), orders[2])  # deterministic
    assert not np.array_equal(epoch_order(34, rank=1, seed=8, epoch=2), orders[2])  # the seed matters
    assert not np.array_equal(epoch_order(34, rank=0, seed=7, epoch=2), orders[2])  # ranks differ


def test_a_resumed_epoch_continues_with_exactly_the_untrained_micro_batches():
    plan = make_plan(rows=64, workers=2, micro_batch_size=2, accumulation=3, epochs=3, max_steps=None)
    assert (plan.steps_per_epoch, plan.micro_batches_per_epoch) == (5, 16)  # 16 micro batches, 15 fill steps
    for epoch in range(plan.epochs):
        full = epoch_micro_batches(plan, rank=1, seed=4, epoch=epoch, step=epoch * plan.steps_per_epoch)
        assert len(full) == plan.steps_per_epoch * 3 and all(len(m) == 2 for m in full)
        assert np.array_equal(np.concatenate(full), epoch_order(32, 1, 4, epoch)[:30])
        for done in range(plan.steps_per_epoch):
            rest = epoch_micro_batches(plan, rank=1, seed=4, epoch=epoch, step=epoch * plan.steps_per_epoch + done)
            assert len(rest) == len(full) - 3 * done
            assert all(np.array_equal(a, b) for a, b in zip(rest, full[3 * done :], strict=True))
