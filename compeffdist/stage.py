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

from compeffdist.artifacts import ArtifactStore, write_json_atomic
from compeffdist.config import JobConfig


@dataclass
class StageOutput:
    """What a stage function returns; the runner turns it into an artifact and manifest."""

    table: pa.Table | None = None
    parts: list[Path] | None = None  # Parquet files already written (large outputs); moved into the artifact
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
    """Everything a running stage may touch: config, inputs, a resumable work folder, rejects."""

    def __init__(self, config: JobConfig, store: ArtifactStore, stage: Stage, key: dict[str, Any]) -> None:
        self.config = config
        self.store = store
        self.stage = stage
        self.work_dir = store.work_dir(stage.name)
        self._rejects: list[dict[str, Any]] = []
        self._prepare_work_dir(key)

    def _prepare_work_dir(self, key: dict[str, Any]) -> None:
        """Keep shards from an interrupted run only if they were made from the same config and inputs."""
        key_path = self.work_dir / "key.json"
        wanted = json.dumps(key, sort_keys=True)
        if key_path.is_file() and key_path.read_text(encoding="utf-8") != wanted:
            self.log("inputs or config changed since the interrupted run: discarding its partial shards")
            shutil.rmtree(self.work_dir)
        if not key_path.is_file():
            write_json_atomic(key_path, wanted)

    @property
    def files_dir(self) -> Path:
        """Staging folder for non-tabular outputs; published with the artifact."""
        path = self.work_dir / "files"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def read(self, stage: str, columns: list[str] | None = None) -> pa.Table:
        return self.store.read_table(stage, columns=columns)

    def input_paths(self, stage: str) -> list[str]:
        return self.store.part_paths(stage)

    def input_files_dir(self, stage: str) -> Path:
        return self.store.files_dir(stage)

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
        print(f"[{time.strftime('%H:%M:%S')}] {self.stage.name}: {message}", file=sys.stderr, flush=True)
