"""The held-out split: teacher-labeled records that the selection stage never offers to training.

A record is held out when a hash of (seed, record id) falls below `evaluation.heldout.fraction`.
The decision needs nothing but the id, so the selection stage (which excludes these records) and the
evaluation stage (which scores them) agree without passing a list, and the split does not depend on
difficulty scores, on the selection method or on which other records exist.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from compeffdist.config import HeldoutConfig


def heldout_draw(seed: int, record_id: str) -> float:
    """A uniform [0, 1) value fixed by (seed, record id)."""
    digest = hashlib.sha256(f"heldout|{seed}|{record_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def is_heldout(record_id: str, heldout: HeldoutConfig) -> bool:
    return heldout.fraction > 0 and heldout_draw(heldout.seed, record_id) < heldout.fraction


def heldout_mask(record_ids: pa.Array | pa.ChunkedArray | Iterable[Any], heldout: HeldoutConfig) -> pa.Array:
    """Boolean array: which of `record_ids` are held out."""
    ids = record_ids.to_pylist() if isinstance(record_ids, pa.Array | pa.ChunkedArray) else list(record_ids)
    return pa.array([is_heldout(str(rid), heldout) for rid in ids], pa.bool_())
