"""The held-out split: teacher-labeled records that the selection stage never offers to training.

A record is held out when a seeded hash of its id falls below `evaluation.heldout.fraction`. The
hash starts from the 64-bit id digest selection already keeps for every record (`idset.digests`),
mixed with the seed by the splitmix64 finalizer, so selection decides on its compact columns without
re-reading ids, and evaluation, which scores these records, reaches the same decision from the ids.
The split depends on nothing but the id: not on difficulty, the selection method, or other records.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from compeffdist.config import HeldoutConfig
from compeffdist.idset import digests

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(values: np.ndarray) -> np.ndarray:
    """The splitmix64 finalizer (a bijection of uint64 with good avalanche), element-wise; wraps mod 2**64."""
    z = values.astype(np.uint64, copy=True)
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return z


def heldout_draws(record_digests: np.ndarray, seed: int) -> np.ndarray:
    """A uniform [0, 1) value per record digest, fixed by (seed, digest)."""
    offset = _splitmix64(np.array([seed], dtype=np.uint64)) * _GOLDEN  # array arithmetic wraps silently
    mixed = _splitmix64(np.asarray(record_digests, dtype=np.uint64) ^ offset[0])
    return (mixed >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def heldout_mask(record_digests: np.ndarray, heldout: HeldoutConfig) -> np.ndarray:
    """Boolean per record digest: held out or not."""
    if heldout.fraction <= 0:
        return np.zeros(len(record_digests), dtype=bool)
    return heldout_draws(record_digests, heldout.seed) < heldout.fraction


def heldout_ids(record_ids: Iterable[str], heldout: HeldoutConfig) -> np.ndarray:
    """Boolean per record id: held out or not (the same decision as `heldout_mask` on its digest)."""
    return heldout_mask(digests(record_ids), heldout)
