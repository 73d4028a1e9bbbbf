"""How far an unfinished stage got: rows in its work area's shards, counted from Parquet footers only.

A resumable stage keeps shards under `_work/<stage>/shards/` (and, for instruction stages, one
folder per teacher step under `_work/<stage>/teacher/<step>-<attempt>/shards/`). Their row count is
N; M is what the maps wrote beside their shards when they started (`EXPECTED_ROWS`). Whether the
shards will be resumed is decided as the stage decides it: the work area's `key.json` must equal
the key the stage would run with now.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from compeffdist.artifacts import ArtifactStore
from compeffdist.storage import Location

KEY_FILE = "key.json"  # written by StageContext._prepare_work
SHARDS = "shards"  # rowmap.SHARDS
EXPECTED_ROWS = "_expected_rows.json"  # rowmap.EXPECTED_ROWS: written beside each shard folder when its map starts


@dataclass(frozen=True)
class WorkProgress:
    """Rows an unfinished stage already has in shards (a batch redone after a crash may count twice)."""

    rows: int
    expected: int | None  # rows the stage will map, when known
    resumable: bool  # made from the current config and inputs: the next run reuses them

    def describe(self) -> str:
        done = f"{self.rows} of {self.expected} rows" if self.expected is not None else f"{self.rows} rows in shards"
        if self.resumable:
            return f"partial: {done} (the next run resumes)"
        return f"partial: {done} (config or inputs changed: the next run discards them)"


def shard_files(work: Location) -> list[Location]:
    """Every shard under a stage's work area (published part files excluded)."""
    return [f for f in work.list_files(".parquet", recursive=True) if f.path.rsplit("/", 2)[-2] == SHARDS]


def work_progress(store: ArtifactStore, stage: str, expected_key: dict[str, Any] | None) -> WorkProgress | None:
    """The progress of `stage`'s work area, or None when it has none (never started, or finished)."""
    work = store.work(stage)
    try:
        key = (work / KEY_FILE).read_text()
    except FileNotFoundError:
        return None
    rows = sum(shard.parquet_rows() for shard in shard_files(work))
    totals = [f for f in work.list_files(EXPECTED_ROWS, recursive=True) if f.name == EXPECTED_ROWS]
    expected = sum(json.loads(f.read_text())["rows"] for f in totals) if totals else None
    if expected is None and rows == 0:
        return None  # a work area without shards (a training run's checkpoints): nothing to count here
    resumable = expected_key is not None and key == json.dumps(expected_key, sort_keys=True)
    return WorkProgress(rows=rows, expected=expected, resumable=resumable)
