"""Percentile bootstrap confidence intervals whose resamples are shared by key, so results pair up.

Every metric here is computed on a set of items (SentiBench test examples of one dataset and demo
seed, or held-out teacher-labeled records). The resampled index matrix depends only on (key, n,
resamples, seed), never on the model: two models scored on the same items get the same resamples,
whichever Ray task, run or experiment arm scored them. A replicate vector can then be combined
after the fact: averaged over datasets (a stratified bootstrap of the overall mean), subtracted
between two models (a paired bootstrap of their difference), or averaged over training seeds.

scipy.stats.bootstrap computes one interval from the data of one call and does not expose its
resamples, so it cannot pair replicates made in separate tasks; the tests check that the
intervals here agree with its percentile method where both apply (docs/architecture.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

DEFAULT_RESAMPLES = 1000
DEFAULT_CONFIDENCE = 0.95


def resample_indices(key: str, n: int, resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> np.ndarray:
    """A (resamples, n) matrix of indices drawn with replacement, fixed by (key, n, resamples, seed)."""
    digest = hashlib.sha256(f"{seed}|{key}|{n}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "big"))
    return rng.integers(0, n, size=(resamples, n)) if n else np.zeros((resamples, 0), dtype=np.int64)


def replicates(
    statistic: Callable[[np.ndarray], float], key: str, n: int, resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> np.ndarray:
    """The statistic on each resample: `statistic(indices)` gets one row of `resample_indices`."""
    return np.array([statistic(row) for row in resample_indices(key, n, resamples, seed)], dtype=np.float64)


def f1_replicates(
    score: Callable[[list[Any], list[Any]], Any], gold: Sequence[Any], predicted: Sequence[Any], key: str,
    resamples: int,
) -> list[float]:  # fmt: skip
    """F1 of `score(gold, predicted)` on each resample of the test examples (the metric's own function).

    `key` names the examples (dataset and demo seed), so every model evaluated on them gets the same resamples.
    """
    gold, predicted = list(gold), list(predicted)

    def statistic(rows: np.ndarray) -> float:
        return score([gold[i] for i in rows], [predicted[i] for i in rows]).f1

    return replicates(statistic, key, len(gold), resamples).tolist()


def macro_f1_replicates(gold: Sequence[str], predicted: Sequence[str], key: str, resamples: int) -> list[float]:
    """Macro-F1 on each resample of the examples, vectorized: equal to scikit-learn's
    f1_score(average="macro", zero_division=0) on every resample (labels: those in the resample's gold or
    predictions), which costs about 1.5 ms a call here against about 20 ms for all 1000 resamples at once."""
    labels = sorted(set(gold) | set(predicted))
    if not gold:
        return [0.0] * resamples
    code = {label: i for i, label in enumerate(labels)}
    g = np.array([code[x] for x in gold])
    p = np.array([code[x] for x in predicted])
    rows = resample_indices(key, len(g), resamples)
    gold_hot = np.eye(len(labels), dtype=np.int64)[g[rows]]  # (resamples, n, labels)
    pred_hot = np.eye(len(labels), dtype=np.int64)[p[rows]]
    true_pos = (gold_hot * pred_hot).sum(axis=1)
    support = gold_hot.sum(axis=1) + pred_hot.sum(axis=1)  # gold + predicted count per label
    present = support > 0
    f1 = np.divide(2 * true_pos, support, out=np.zeros(true_pos.shape, dtype=np.float64), where=present)
    return (f1.sum(axis=1) / present.sum(axis=1)).tolist()


@dataclass(frozen=True)
class Interval:
    """A point estimate with its percentile confidence interval."""

    estimate: float
    low: float
    high: float
    confidence: float = DEFAULT_CONFIDENCE

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def format(self, digits: int = 1, signed: bool = False) -> str:
        """'62.5 [55.0, 70.0]' ('+3.1 [0.4, 5.9]' when signed)."""
        point = f"{self.estimate:+.{digits}f}" if signed else f"{self.estimate:.{digits}f}"
        return f"{point} [{self.low:.{digits}f}, {self.high:.{digits}f}]"

    def as_dict(self) -> dict[str, float]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high, "confidence": self.confidence}


def interval(estimate: float, samples: np.ndarray, confidence: float = DEFAULT_CONFIDENCE) -> Interval:
    """The percentile interval of bootstrap `samples` around the full-sample `estimate`."""
    samples = np.asarray(samples, dtype=np.float64)
    samples = samples[np.isfinite(samples)]
    if not samples.size:
        return Interval(estimate, float("nan"), float("nan"), confidence)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(samples, [tail, 100 - tail])
    return Interval(float(estimate), float(low), float(high), confidence)


def mean_replicates(values: np.ndarray, key: str, resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> np.ndarray:
    """Replicates of the mean of per-item `values` (vectorized)."""
    values = np.asarray(values, dtype=np.float64)
    if not values.size:
        return np.full(resamples, np.nan)
    return values[resample_indices(key, len(values), resamples, seed)].mean(axis=1)


def ratio_replicates(
    numerators: np.ndarray, denominators: np.ndarray, key: str, resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> np.ndarray:
    """Replicates of sum(numerators) / sum(denominators) over resampled items (e.g. NLL per token)."""
    numerators = np.asarray(numerators, dtype=np.float64)
    denominators = np.asarray(denominators, dtype=np.float64)
    if not numerators.size:
        return np.full(resamples, np.nan)
    indices = resample_indices(key, len(numerators), resamples, seed)
    return numerators[indices].sum(axis=1) / denominators[indices].sum(axis=1)


def over_training_seeds(per_seed: Sequence[np.ndarray], key: str, seed: int = 0) -> np.ndarray:
    """Replicates of the mean over training seeds, resampling the seeds as well as the items.

    `per_seed[s]` holds one seed's replicates (built on the shared item resamples). Replicate b draws
    len(per_seed) seeds with replacement and averages their b-th replicates, so the interval carries
    seed-to-seed variation as well as item sampling (a two-level bootstrap).
    """
    stacked = np.vstack([np.asarray(r, dtype=np.float64) for r in per_seed])
    count, resamples = stacked.shape
    drawn = resample_indices(f"seeds|{key}", count, resamples, seed)  # (resamples, count)
    return stacked[drawn, np.arange(resamples)[:, None]].mean(axis=1)
