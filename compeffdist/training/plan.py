"""How many optimizer steps a run takes, and which rows each worker trains on at each of them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TrainPlan:
    """Step counts every worker agrees on before training starts.

    Ray Data splits the rows equally (``equal=True``), so each worker holds ``rows // workers``
    rows, reshuffled every epoch (``epoch_order``); the micro batches of an epoch that do not fill
    a whole optimizer step are skipped so every epoch has the same steps and a resumed run can
    find its place by step count alone.
    """

    rows: int
    workers: int
    micro_batch_size: int
    gradient_accumulation_steps: int
    epochs: int
    steps_per_epoch: int
    total_steps: int

    @property
    def micro_batches_per_epoch(self) -> int:
        """Micro batches each worker draws from its shard in one epoch."""
        return self.rows // self.workers // self.micro_batch_size

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_plan(
    rows: int, workers: int, micro_batch_size: int, accumulation: int, epochs: int, max_steps: int | None
) -> TrainPlan:
    """Raise ValueError when the data cannot fill one optimizer step on every worker."""
    micro_batches = rows // workers // micro_batch_size
    steps_per_epoch = micro_batches // accumulation
    if steps_per_epoch == 0:
        raise ValueError(
            f"{rows} training sequences cannot fill one optimizer step: each of {workers} workers needs "
            f"micro_batch_size × gradient_accumulation_steps = {micro_batch_size * accumulation} sequences"
        )
    total = steps_per_epoch * epochs
    if max_steps is not None:
        total = min(total, max_steps)
    return TrainPlan(rows, workers, micro_batch_size, accumulation, epochs, steps_per_epoch, total)


def epoch_order(shard_rows: int, rank: int, seed: int, epoch: int) -> np.ndarray:
    """Positions in worker `rank`'s shard (its rows sorted by row index) in the order it trains on them in `epoch`.

    A fresh permutation per (seed, epoch, rank): every epoch reshuffles, ranks differ, and the same
    arguments give the same order, which is what lets a resumed run skip exactly what it already
    trained on. Which rows a worker holds is Ray Data's equal split, fixed for the run.
    """
    return np.random.default_rng([seed, epoch, rank]).permutation(shard_rows)


def epoch_micro_batches(plan: TrainPlan, rank: int, seed: int, epoch: int, step: int) -> list[np.ndarray]:
    """Shard positions of each micro batch `rank` still trains on in `epoch` once `step` optimizer steps are done.

    The epoch's order is `epoch_order`; the micro batches of the steps already taken (a resumed run)
    and the tail that cannot fill a whole optimizer step are left out. The first micro batch
    returned always opens an accumulation window.
    """
    accumulation = plan.gradient_accumulation_steps
    done = min(max(0, step - epoch * plan.steps_per_epoch), plan.steps_per_epoch) * accumulation
    order = epoch_order(plan.rows // plan.workers, rank, seed, epoch)
    size = plan.micro_batch_size
    return [order[i * size : (i + 1) * size] for i in range(done, plan.steps_per_epoch * accumulation)]
