"""Comparing students trained on different data (experiment arms), each over several training seeds.

Every (arm, seed) student is evaluated on the same SentiBench examples and the same held-out records,
so their replicates share resamples (bootstrap.py). An arm's figure is the mean over its seeds; its
replicates resample the items *and* the seeds (bootstrap.over_training_seeds), so an interval, and
the interval of a difference between two arms, carries both test-sampling and seed-to-seed variation.
A difference is called significant when its interval excludes zero (one interval per comparison, no
correction for the number of comparisons).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

from compeffdist.evaluation.bootstrap import Interval, over_training_seeds
from compeffdist.evaluation.comparison import Measure


def combine_seeds(measures: dict[str, Measure], arm_models: dict[str, list[str]]) -> dict[str, Measure]:
    """arm -> its Measure over the seeds' models (`arm_models[arm]`: the model labels of its seeds)."""
    combined = {}
    for arm, models in arm_models.items():
        present = [measures[m] for m in models if m in measures]
        if not present:
            continue
        replicates = (
            over_training_seeds([m.replicates for m in present], key=arm) if len(present) > 1 else present[0].replicates
        )
        combined[arm] = Measure(float(np.mean([m.estimate for m in present])), replicates, present[0].n)
    return combined


def seed_spread(measures: dict[str, Measure], models: list[str]) -> float:
    """Population standard deviation of the seeds' estimates (context for the interval)."""
    values = [measures[m].estimate for m in models if m in measures]
    return float(np.std(values)) if values else float("nan")


@dataclass(frozen=True)
class Difference:
    first: str
    second: str
    interval: Interval

    @property
    def significant(self) -> bool:
        return self.interval.excludes_zero


def differences(
    arms: dict[str, Measure], confidence: float, pairs: list[tuple[str, str]] | None = None
) -> list[Difference]:
    """first − second for each pair (every pair of arms by default), with its interval."""
    chosen = pairs if pairs is not None else list(combinations(arms, 2))
    return [Difference(a, b, arms[a].minus(arms[b], confidence)) for a, b in chosen if a in arms and b in arms]
