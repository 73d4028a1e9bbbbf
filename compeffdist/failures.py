"""A stage whose input leaves it nothing to do: a clean error that keeps the reasons readable.

A stage raises `StageFailed` (e.g. a pool in which every row was rejected). The runner saves the
stage's rejects under `<output_dir>/_failed/<stage>/` and re-raises with a summary of the reject
reasons; the command line prints that and exits non-zero, without a traceback. The record is
removed when the stage later publishes, and `status` shows the stage as failed until then.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import pyarrow as pa

from compeffdist.storage import Location

FAILED = "_failed"
FAILURE_JSON = "failure.json"
FAILED_REJECTS = "rejects.parquet"


class StageFailed(Exception):
    """A stage cannot produce its output from this input; the message says why and what to change."""


def summarize_rejects(rows: list[dict[str, Any]], limit: int = 5) -> str:
    """The most frequent (field, reason) pairs of reject rows, with a count and the first row's place."""
    if not rows:
        return "no row was rejected"
    counts = Counter((row.get("field"), row.get("reason")) for row in rows)
    first: dict[tuple[Any, Any], dict[str, Any]] = {}
    for row in rows:
        first.setdefault((row.get("field"), row.get("reason")), row)
    lines = [f"{len(rows)} row(s) rejected:"]
    for (field, reason), count in counts.most_common(limit):
        example = first[(field, reason)]
        lines.append(f"  {count:>6} x {field}: {reason} (first: {example.get('source')} {example.get('location')})")
    others = counts.most_common()[limit:]
    if others:
        lines.append(f"  {sum(c for _, c in others):>6} x {len(others)} other reason(s)")
    return "\n".join(lines)


def failure_dir(root: Location, stage: str) -> Location:
    return root.join(FAILED, stage)


def save_failure(root: Location, stage: str, message: str, rejects: pa.Table) -> Location:
    """Write the failed stage's rejects and message; returns the rejects file's location."""
    folder = failure_dir(root, stage)
    folder.mkdir()
    (folder / FAILED_REJECTS).write_parquet(rejects)
    at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    record = {"stage": stage, "message": message, "rejects": rejects.num_rows, "at": at}
    (folder / FAILURE_JSON).write_text(json.dumps(record, indent=2))
    return folder / FAILED_REJECTS


def load_failure(root: Location, stage: str) -> dict[str, Any] | None:
    """The failure record of a stage's last attempt, if that attempt failed and nothing was published since."""
    try:
        return json.loads((failure_dir(root, stage) / FAILURE_JSON).read_text())
    except FileNotFoundError:
        return None


def clear_failure(root: Location, stage: str) -> None:
    failure_dir(root, stage).delete()
