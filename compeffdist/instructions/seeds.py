"""Seeds of instruction construction: one per teacher request, one random stream per sampled item.

Both hash the run seed with ids, so a request's draw or an item's sample never depends on batch
layout, on the order of other items, or on how many there are.
"""

from __future__ import annotations

import hashlib
import random


def request_seed(base_seed: int, request_id: str) -> int:
    """A sampling seed for one request: a hash of the base seed and the request id (31 bits, for every backend).

    Stable across runs and batch layouts; different for every request, re-asks included (their ids differ).
    """
    digest = hashlib.sha256(f"{base_seed}|{request_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def seeded_random(*parts: object) -> random.Random:
    """A Random seeded by the run seed and ids, so one item's sample does not depend on the others."""
    return random.Random(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest())
