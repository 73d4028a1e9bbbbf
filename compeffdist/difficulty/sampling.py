"""Difficulty-prioritized sampling (METHOD.md §3.2), with the official code's bugs fixed (B6).

Within a group of n items sorted by difficulty (easiest first), item i sits at quantile
x_i = (i + 0.5) / n and is kept with probability F(x_i), a tent curve peaking at x = a:
F(x) = (x / a)^b below a and ((1 - x) / (1 - a))^b above. Its integral over [0, 1] is 1 / (b + 1),
so b = 1 / r - 1 keeps a fraction r in expectation for every a (closed form; no root finding).

Methods: soft (that curve), hard (the round(r·n) hardest; a quota that rounds to 0 keeps nothing,
never the whole group), random (uniform, fixed size). Soft has two modes: bernoulli (independent
draws, as in the paper) and exact (systematic sampling over the difficulty order: the kept count is
the floor or ceil of sum F(x_i), and each item is still kept with probability exactly F(x_i)).
Fractional quotas are rounded stochastically (floor + Bernoulli(fraction)) so expected sizes are
unbiased even for tiny groups. Each group draws from its own generator seeded by (seed, group), so
adding a group never changes another group's selection; ties in difficulty are broken by a digest of
the id (order-independent, and 8 bytes a record where the driver holds many).
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np


def tent_exponent(rate: float) -> float:
    """b such that the tent curve integrates to `rate` over [0, 1]: b = 1 / r - 1."""
    if not 0 < rate <= 1:
        raise ValueError(f"rate must be in (0, 1], got {rate}")
    return 1.0 / rate - 1.0


def tent_curve(x: np.ndarray, a: float, b: float) -> np.ndarray:
    """F(x) = (x / a)^b for x < a, ((1 - x) / (1 - a))^b for x >= a (F(x) = x^b when a = 1)."""
    if not 0 < a <= 1:
        raise ValueError(f"a must be in (0, 1], got {a}")
    x = np.asarray(x, dtype=np.float64)
    # np.where evaluates both branches everywhere: clamp the bases to 1 so the branch not taken cannot
    # overflow (x / a reaches 1 / a on the far side of a small peak, and b = 1 / r - 1 is large).
    below = np.minimum(x / a, 1.0) ** b
    above = np.minimum((1.0 - x) / (1.0 - a), 1.0) ** b if a < 1 else np.ones_like(x)
    return np.where(x < a, below, above)


def soft_probabilities(n: int, rate: float, a: float) -> np.ndarray:
    """Keep probabilities of n items in ascending difficulty order: F at the midpoint quantiles."""
    quantiles = (np.arange(n, dtype=np.float64) + 0.5) / max(n, 1)
    return tent_curve(quantiles, a, tent_exponent(rate))


def stochastic_round(value: float, rng: np.random.Generator) -> int:
    """floor(value) + 1 with probability frac(value): unbiased integer sizes."""
    whole = int(np.floor(value))
    return whole + int(rng.random() < value - whole)


def systematic_sample(probabilities: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Systematic sampling: keeps floor or ceil of sum(p) items, item i with probability exactly p_i."""
    cumulative = np.concatenate([[0.0], np.cumsum(probabilities)])
    start = rng.random()
    # Item i is kept when a point start + k falls in [cumulative[i], cumulative[i + 1]).
    return np.floor(cumulative[1:] - start) > np.floor(cumulative[:-1] - start)


def sample_group(
    difficulties: np.ndarray, method: str, rate: float, a: float, mode: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Select within one group; returns (kept mask, inclusion probability), both in input order.

    Items are ranked by difficulty with a stable sort, so equal difficulties keep input order.
    """
    n = len(difficulties)
    order = np.argsort(np.asarray(difficulties, dtype=np.float64), kind="stable")
    kept_sorted = np.zeros(n, dtype=bool)
    if method == "soft":
        probability_sorted = soft_probabilities(n, rate, a)
        if mode == "bernoulli":
            kept_sorted = rng.random(n) < probability_sorted
        else:
            kept_sorted = systematic_sample(probability_sorted, rng)
    elif method == "hard":
        quota = rate * n
        count = stochastic_round(quota, rng)
        kept_sorted[n - count :] = True  # slicing from n - count, never `[-0:]`: a zero quota keeps nothing
        whole = int(np.floor(quota))
        probability_sorted = np.zeros(n)
        probability_sorted[n - whole :] = 1.0
        if whole < n:
            probability_sorted[n - whole - 1] = quota - whole
    elif method == "random":
        count = stochastic_round(rate * n, rng)
        kept_sorted[rng.choice(n, size=count, replace=False)] = True
        probability_sorted = np.full(n, rate)
    else:
        raise ValueError(f"unknown sampling method {method!r}")
    kept = np.zeros(n, dtype=bool)
    probability = np.zeros(n)
    kept[order] = kept_sorted
    probability[order] = probability_sorted
    return kept, probability


@dataclass(frozen=True)
class GroupResult:
    """Realized selection of one group."""

    group: Hashable
    pool: int
    selected: int
    expected: float

    @property
    def rate(self) -> float:
        return self.selected / self.pool if self.pool else 0.0


@dataclass(frozen=True)
class Selection:
    """Kept mask and inclusion probabilities aligned with the input, plus per-group results."""

    kept: np.ndarray
    probability: np.ndarray
    groups: list[GroupResult]

    @property
    def rate(self) -> float:
        return float(self.kept.mean()) if len(self.kept) else 0.0


def group_rng(seed: int, group: Hashable) -> np.random.Generator:
    """A generator that depends only on (seed, group)."""
    digest = hashlib.sha256(f"{seed}|{group!r}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def select_arrays(
    difficulties: np.ndarray,
    tiebreak: np.ndarray,
    groups: tuple[np.ndarray, list[Hashable]] | None,
    method: str,
    rate: float,
    a: float = 1.0,
    mode: str = "bernoulli",
    seed: int = 0,
) -> Selection:
    """Sample within each group over columnar inputs: one vectorized sort, then one short numpy step per group.

    `groups` is each item's group number and the groups' keys (None: one global pool); `tiebreak` orders
    equal difficulties (an id digest). Deterministic given the seed and independent of the input order:
    items are ranked by (difficulty, tiebreak) and each group draws from its own generator seeded by
    (seed, key).
    """
    count = len(difficulties)
    if len(tiebreak) != count or (groups is not None and len(groups[0]) != count):
        raise ValueError("difficulties, tiebreak and groups must have the same length")
    number = np.asarray(groups[0], dtype=np.int64) if groups is not None else np.zeros(count, dtype=np.int64)
    keys: list[Hashable] = groups[1] if groups is not None else [None]
    values = np.asarray(difficulties, dtype=np.float64)
    order = np.lexsort((tiebreak, values, number))  # last key first: group, then difficulty, then tie-break
    sorted_groups = number[order]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]]) if count else np.array([], int)
    ends = np.r_[starts[1:], count]
    kept = np.zeros(count, dtype=bool)
    probability = np.zeros(count)
    results = []
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        key = keys[int(sorted_groups[start])]
        rows = order[start:end]
        group_kept, group_probability = sample_group(values[rows], method, rate, a, mode, group_rng(seed, key))
        kept[rows], probability[rows] = group_kept, group_probability
        results.append(GroupResult(key, end - start, int(group_kept.sum()), float(group_probability.sum())))
    results.sort(key=lambda g: repr(g.group))
    return Selection(kept=kept, probability=probability, groups=results)


def select(
    ids: Sequence[str],
    difficulties: Sequence[float],
    groups: Sequence[Hashable] | None,
    method: str,
    rate: float,
    a: float = 1.0,
    mode: str = "bernoulli",
    seed: int = 0,
) -> Selection:
    """`select_arrays` over Python sequences: ids break ties (by digest), any hashable group keys (`groups=None`:
    one global pool)."""
    from compeffdist.idset import digests

    grouped = None
    if groups is not None:
        keys = sorted(set(groups), key=repr)
        number = {key: i for i, key in enumerate(keys)}
        grouped = (np.array([number[g] for g in groups], dtype=np.int64), keys)
    return select_arrays(np.asarray(difficulties, dtype=np.float64), digests(ids), grouped,
                         method, rate, a=a, mode=mode, seed=seed)  # fmt: skip
