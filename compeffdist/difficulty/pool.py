"""The scored records as compact columns for selection: about 21 bytes a record, read part by part.

Selection needs, per record, its score, its group (cluster, template), a tie-break and its task kind
(for the report). Holding them as Arrow strings and Python tuples cost ~300 bytes a record at peak
(500,000 records: ~150 MB in the driver); numpy arrays of a float, a 64-bit id digest, a group
number and a kind code cost 21. Records keep their order (part by part, row by row), so selection
results map back to rows by position, never by id look-up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from compeffdist.idset import digests
from compeffdist.storage import Location

COLUMNS = ["record_id", "difficulty", "cluster_id", "template_id", "kind"]


@dataclass
class ScoredPool:
    """Every scored record of the `difficulty` artifact, in part order; NaN marks an unscored record."""

    part_rows: list[int] = field(default_factory=list)
    difficulty: np.ndarray = field(default_factory=lambda: np.empty(0))
    digest: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint64))  # tie-break: order-independent
    group: np.ndarray = field(default_factory=lambda: np.empty(0, np.int32))
    group_keys: list[tuple[int, str]] = field(default_factory=list)  # (cluster_id, template_id) per group number
    kind: np.ndarray = field(default_factory=lambda: np.empty(0, np.int8))
    kind_names: list[str] = field(default_factory=list)
    unscored: int = 0  # records without a score (null; truncated under `skip`), read as NaN

    @property
    def cluster(self) -> np.ndarray:
        """Each record's cluster id."""
        return np.array([key[0] for key in self.group_keys], dtype=np.int64)[self.group]

    @classmethod
    def read(cls, parts: list[Location]) -> ScoredPool:
        pool = cls()
        groups: dict[tuple[Any, ...], int] = {}
        kinds: dict[str, int] = {}
        chunks: dict[str, list[np.ndarray]] = {"difficulty": [], "digest": [], "group": [], "kind": []}
        for part in parts:
            table = part.read_parquet(columns=COLUMNS)
            pool.part_rows.append(table.num_rows)
            pool.unscored += table.column("difficulty").null_count
            score = pc.fill_null(pc.cast(table.column("difficulty"), pa.float64()), float("nan"))
            chunks["difficulty"].append(score.to_numpy())
            chunks["digest"].append(digests(table.column("record_id").to_pylist()))
            chunks["group"].append(_codes(table, ["cluster_id", "template_id"], groups).astype(np.int32))
            chunks["kind"].append(_codes(table, ["kind"], kinds).astype(np.int8))
        for name, arrays in chunks.items():
            if arrays:
                setattr(pool, name, np.concatenate(arrays))
        pool.group_keys = list(groups)  # insertion order = group number
        pool.kind_names = [key[0] for key in kinds]
        return pool


def _codes(table: pa.Table, columns: list[str], known: dict[Any, int]) -> np.ndarray:
    """Each row's number for its value of `columns`, numbering new values in `known` as they appear."""
    parts = [pc.fill_null(pc.cast(table.column(c), pa.string()), "") for c in columns]
    combined = parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, "\x1f")
    encoded = pc.dictionary_encode(combined).combine_chunks()
    local = encoded.indices.to_numpy(zero_copy_only=False)
    _, first_rows = np.unique(local, return_index=True)
    mapping = np.empty(len(encoded.dictionary), dtype=np.int64)
    for code, row in enumerate(first_rows):
        key = tuple(table.column(c)[int(row)].as_py() for c in columns)
        mapping[code] = known.setdefault(key, len(known))
    return mapping[local]
