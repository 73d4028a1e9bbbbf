"""Token accounting in one place: per-model prompt/output tokens and requests, from result rows."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

Usage = dict[str, dict[str, int]]  # model -> {"prompt_tokens", "output_tokens", "requests"}
KEYS = ("prompt_tokens", "output_tokens", "requests")


def batch_tokens(table: pa.Table) -> tuple[int, int]:
    """(prompt tokens, output tokens) of a batch of result rows (0 for columns it lacks)."""
    totals = []
    for column in ("prompt_tokens", "output_tokens"):
        value = pc.sum(table.column(column)).as_py() if column in table.column_names else None
        totals.append(int(value or 0))
    return totals[0], totals[1]


def add_usage(usage: Usage, table: pa.Table) -> Usage:
    """Add a table of result rows (model, prompt_tokens, output_tokens) to `usage`, per model; returns it."""
    if table.num_rows == 0 or "model" not in table.column_names:
        return usage
    grouped = (
        table.select(["model", "prompt_tokens", "output_tokens"])
        .group_by("model")
        .aggregate([("prompt_tokens", "sum"), ("output_tokens", "sum"), ("model", "count")])
    )
    for row in grouped.to_pylist():
        entry = usage.setdefault(row["model"] or "unknown", dict.fromkeys(KEYS, 0))
        entry["prompt_tokens"] += int(row["prompt_tokens_sum"] or 0)
        entry["output_tokens"] += int(row["output_tokens_sum"] or 0)
        entry["requests"] += int(row["model_count"])
    return usage


def merge_usage(*usages: Usage) -> Usage:
    """Sum several usages per model."""
    total: Usage = {}
    for usage in usages:
        for model, entry in usage.items():
            target = total.setdefault(model, dict.fromkeys(KEYS, 0))
            for key, value in entry.items():
                target[key] = target.get(key, 0) + value
    return total
