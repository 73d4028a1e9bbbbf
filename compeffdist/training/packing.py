"""Training sequences (one document each, or several packed per row) and their batch collation.

Packed rows carry position_ids that restart at 0 for every document. With no attention mask,
transformers reads those restarts as document boundaries and builds a block-diagonal causal
mask (``masking_utils.find_packed_sequence_indices``), so documents never attend to each other.
It does so only without a KV cache: the training forward passes ``use_cache=False``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np

from compeffdist.training.examples import IGNORE_INDEX, TokenizedExample

SEQUENCE_COLUMNS = ("input_ids", "labels", "position_ids")
ROW_INDEX = "row_index"  # position of a sequence in the training dataset: what the per-epoch order permutes


def shuffled(examples: Sequence[TokenizedExample], seed: int | str) -> list[TokenizedExample]:
    """A seeded order that depends on record ids only, not on the order rows arrived in (random.Random's seeds)."""
    ordered = sorted(examples, key=lambda e: e.record_id)
    random.Random(seed).shuffle(ordered)
    return ordered


def single_sequences(examples: Sequence[TokenizedExample]) -> list[dict[str, list[int]]]:
    """One document per row (no packing)."""
    return [
        {"input_ids": e.input_ids, "labels": e.labels, "position_ids": list(range(len(e.input_ids)))} for e in examples
    ]


def pack_sequences(examples: Sequence[TokenizedExample], max_seq_len: int) -> list[dict[str, list[int]]]:
    """Greedy packing in the given order: a row is closed when the next document would overflow it."""
    rows: list[dict[str, list[int]]] = []
    current: dict[str, list[int]] = {name: [] for name in SEQUENCE_COLUMNS}
    for example in examples:
        if len(example.input_ids) > max_seq_len:
            raise ValueError(f"example {example.record_id} has {len(example.input_ids)} tokens > {max_seq_len}")
        if current["input_ids"] and len(current["input_ids"]) + len(example.input_ids) > max_seq_len:
            rows.append(current)
            current = {name: [] for name in SEQUENCE_COLUMNS}
        current["input_ids"] += example.input_ids
        current["labels"] += example.labels
        current["position_ids"] += range(len(example.input_ids))
    if current["input_ids"]:
        rows.append(current)
    return rows


def _as_rows(column: Any) -> list[np.ndarray]:
    """Ray Data hands ragged list columns over as an object array of arrays, equal ones as a 2-D array."""
    return [np.asarray(item, dtype=np.int64) for item in column]


def collate(batch: dict[str, Any], pad_token_id: int, packed: bool) -> tuple[dict[str, Any], int]:
    """Right-pad a batch of rows into the model's forward inputs; also return the number of real tokens.

    Packed batches get no attention mask (the position-id restarts define the documents; padding
    is one more document, with labels -100). Unpacked batches get a 0/1 padding mask.
    """
    import torch

    ids, labels, positions = (_as_rows(batch[name]) for name in SEQUENCE_COLUMNS)
    width = max(len(row) for row in ids)
    out_ids = np.full((len(ids), width), pad_token_id, dtype=np.int64)
    out_labels = np.full((len(ids), width), IGNORE_INDEX, dtype=np.int64)
    out_positions = np.zeros((len(ids), width), dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    for i, (row_ids, row_labels, row_positions) in enumerate(zip(ids, labels, positions, strict=True)):
        n = len(row_ids)
        out_ids[i, :n], out_labels[i, :n], out_positions[i, :n], mask[i, :n] = row_ids, row_labels, row_positions, 1
        out_positions[i, n:] = np.arange(width - n)  # padding restarts at 0: a separate "document"
    tensors = {
        "input_ids": torch.from_numpy(out_ids),
        "labels": torch.from_numpy(out_labels),
        "position_ids": torch.from_numpy(out_positions),
    }
    if not packed:
        tensors["attention_mask"] = torch.from_numpy(mask)
    return tensors, int(mask.sum())
