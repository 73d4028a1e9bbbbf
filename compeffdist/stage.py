"""What a stage is: a named pure function of (config sections, input artifacts) -> output artifact."""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from compeffdist.artifacts import ArtifactStore
from compeffdist.config import JobConfig
from compeffdist.lease import LeaseLost
from compeffdist.redact import redact_text
from compeffdist.storage import Location

OWNER_FILE = "owner.json"


@dataclass
class StageOutput:
    """What a stage function returns; the runner turns it into an artifact and manifest."""

    table: pa.Table | None = None
    parts: list[Location] | None = None  # Parquet files already on the run's storage (large outputs); moved in
    # Rows per Parquet file of `table`. The actor-pool map reads one block per file, so a stage read lazily by an actor
    # pool (records -> responses) publishes several smaller files: parallel actors and streaming progress.
    rows_per_part: int | None = None
    counts: dict[str, int] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)
    token_usage: dict[str, dict[str, int]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Stage:
    """A pipeline stage.

    `sections` are dotted config paths whose values decide the stage's output; changing any of
    them makes the stage stale. `inputs` are upstream stage names.
    """

    name: str
    run: Callable[[StageContext], StageOutput]
    inputs: tuple[str, ...] = ()
    sections: tuple[str, ...] = ()
    description: str = ""
    external_inputs: Callable[[JobConfig], list[Path]] | None = None


class StageContext:
    """Everything a running stage may touch: config, inputs, a resumable work area, local scratch, rejects.

    `work` is on the run's storage (shards there survive a crash and are seen by every node);
    `work_dir` is a local folder for staging files (`files_dir`) before they are published. For a
    local run both are the same folder, `<output_dir>/_work/<stage>`.
    """

    def __init__(
        self, config: JobConfig, store: ArtifactStore, stage: Stage, key: dict[str, Any], run_id: str | None = None
    ) -> None:
        self.config = config
        self.store = store
        self.stage = stage
        self.run_id = run_id  # the run that owns the work area (None: no ownership check)
        self.work = store.work(stage.name)
        self.work_dir = store.scratch(stage.name)
        self._rejects: list[dict[str, Any]] = []
        self.actor_seconds = 0.0  # busy time of the actors/workers this stage used (summed over them)
        self.gpu_seconds = 0.0
        self._prepare_work(key)

    def _prepare_work(self, key: dict[str, Any]) -> None:
        """Keep shards from an interrupted run only if they were made from the same config and inputs."""
        key_file = self.work / "key.json"
        wanted = json.dumps(key, sort_keys=True)
        if key_file.is_file() and key_file.read_text() != wanted:
            self.log("inputs or config changed since the interrupted run: discarding its partial shards")
            self.cleanup()
        if not key_file.is_file():
            key_file.write_text(wanted)
        if self.run_id is not None:  # shards of an earlier (dead) run are reused; from now on they are this run's
            (self.work / OWNER_FILE).write_text(json.dumps({"run_id": self.run_id}))
        self.work_dir.mkdir(parents=True, exist_ok=True)

    def check_owner(self) -> None:
        """Raise LeaseLost if another run has claimed this stage's work area (its shards are not ours to publish)."""
        if self.run_id is None:
            return
        try:
            owner = json.loads((self.work / OWNER_FILE).read_text()).get("run_id")
        except FileNotFoundError:
            owner = None
        if owner != self.run_id:
            raise LeaseLost(
                f"stage {self.stage.name}: the work area {self.work} now belongs to run {owner or '(none: removed)'}, "
                f"not this run ({self.run_id}); nothing was published"
            )

    def cleanup(self) -> None:
        """Remove the work area and the local scratch (after publishing, or when they are stale)."""
        self.work.delete()
        shutil.rmtree(self.work_dir, ignore_errors=True)

    @property
    def files_dir(self) -> Path:
        """Local staging folder for non-tabular outputs; published with the artifact."""
        path = self.work_dir / "files"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def part_writer(self, schema: pa.Schema, rows_per_part: int) -> PartWriter:
        """Collects output rows and writes them as Parquet parts in the work area (publish with `.parts`)."""
        return PartWriter(self.work / "parts", schema, rows_per_part)

    def read(self, stage: str, columns: list[str] | None = None) -> pa.Table:
        return self.store.read_table(stage, columns=columns)

    def input_parts(self, stage: str) -> list[Location]:
        """A finished input stage's Parquet parts, for lazy reads (Ray Data) instead of `read`."""
        return self.store.parts(stage)

    def input_files(self, stage: str) -> Location:
        """A finished input stage's non-tabular outputs, on the run's storage."""
        return self.store.files(stage)

    def add_actor_time(self, seconds: float, gpus_per_actor: float) -> None:
        """Account busy seconds of actors (summed over them) holding `gpus_per_actor` GPUs each."""
        self.actor_seconds += seconds
        self.gpu_seconds += seconds * gpus_per_actor

    def reject(self, source: str, location: str, field: str, reason: str, raw: Any = None) -> None:
        """Quarantine one unusable input or output row; it is saved and counted, never lost silently."""
        self._rejects.append(
            {
                "stage": self.stage.name,
                "source": source,
                "location": location,
                "field": field,
                "reason": reason,
                "raw": raw,
            }
        )

    def add_rejects(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self._rejects.append({"stage": self.stage.name, **row})

    @property
    def rejects(self) -> list[dict[str, Any]]:
        return self._rejects

    def log(self, message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {self.stage.name}: {redact_text(message)}", file=sys.stderr, flush=True)


class PartWriter:
    """Writes rows as Parquet parts of `rows_per_part` rows, so a large output never sits whole in memory."""

    def __init__(self, folder: Location, schema: pa.Schema, rows_per_part: int) -> None:
        self.folder = folder
        self.folder.mkdir()
        self.schema = schema
        self.rows_per_part = rows_per_part
        self.rows: list[dict[str, Any]] = []
        self.parts: list[Location] = []
        self.rows_written = 0

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.rows_per_part:
            self.flush()

    def flush(self) -> None:
        """Write the rows collected so far as one more part."""
        if self.rows:
            part = self.folder / f"part-{len(self.parts):06d}.parquet"
            part.write_parquet(pa.Table.from_pylist(self.rows, schema=self.schema))
            self.parts.append(part)
            self.rows_written += len(self.rows)
            self.rows = []
