"""Step plan and learning-rate schedule."""

from __future__ import annotations

import itertools
import math

import pytest

from compeffdist.training.plan import lr_multiplier, make_plan

pytestmark = pytest.mark.unit


def test_plan_counts_whole_steps_per_worker():
    plan = make_plan(rows=103, workers=2, micro_batch_size=4, accumulation=3, epochs=4, max_steps=None)
    # 51 rows per worker -> 12 micro batches -> 4 optimizer steps per epoch
    assert (plan.micro_batches_per_epoch, plan.steps_per_epoch, plan.total_steps) == (12, 4, 16)
    assert make_plan(103, 2, 4, 3, 4, max_steps=6).total_steps == 6


def test_plan_refuses_data_that_cannot_fill_a_step():
    with pytest.raises(ValueError, match="cannot fill one optimizer step"):
        make_plan(rows=10, workers=2, micro_batch_size=2, accumulation=4, epochs=1, max_steps=None)


def test_cosine_without_warmup_starts_at_full_lr_and_decays_to_zero():
    factor = lr_multiplier("cosine", warmup_steps=0, total_steps=100)
    values = [factor(s) for s in range(101)]
    assert values[0] == 1.0 and math.isclose(values[50], 0.5) and values[100] == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in itertools.pairwise(values))


def test_warmup_then_linear_and_constant():
    linear = lr_multiplier("linear", warmup_steps=4, total_steps=14)
    assert [linear(s) for s in range(5)] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert linear(9) == pytest.approx(0.5)
    assert lr_multiplier("constant", 2, 10)(9) == 1.0
