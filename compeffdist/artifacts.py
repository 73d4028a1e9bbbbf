"""Artifact store: each stage's output is a folder of Parquet parts plus a manifest, written atomically.

Layout under the run's output_dir::

    <stage>/part-00000.parquet ...   the stage's rows
    <stage>/rejects.parquet          rows that could not be used, with the reason (optional)
    <stage>/files/                   non-tabular outputs (a model folder, plots)
    <stage>/manifest.json            written last: its presence means the stage is done
    _work/<stage>/                   resumable shards of a stage that has not finished yet

A finished stage folder is built under a temporary name and renamed into place, so a crash
leaves either the old complete artifact or none, never a half-written one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

MANIFEST = "manifest.json"
REJECTS = "rejects.parquet"
ROWS_PER_PART = 50_000

REJECT_SCHEMA = pa.schema(
    [
        ("stage", pa.string()),
        ("source", pa.string()),
        ("location", pa.string()),
        ("field", pa.string()),
        ("reason", pa.string()),
        ("raw", pa.string()),
    ]
)


@dataclass
class Manifest:
    """What a stage produced and from what: enough to decide whether it is still valid."""

    stage: str
    config_hash: str
    input_fingerprints: dict[str, str]
    seed: int
    counts: dict[str, int] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)
    token_usage: dict[str, dict[str, int]] = field(default_factory=dict)
    wall_time_s: float = 0.0
    finished_at: str = ""
    files: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """Identity of the artifact for downstream staleness checks."""
        payload = json.dumps(
            [self.stage, self.config_hash, self.input_fingerprints, self.seed, self.counts, self.files],
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "fingerprint": self.fingerprint}, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        data.pop("fingerprint", None)
        return cls(**data)


def write_json_atomic(path: Path, payload: str) -> None:
    """Write text to `path` via a temporary file and rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(payload, encoding="utf-8")
    os.replace(tmp, path)


def write_parquet_atomic(path: Path, table: pa.Table) -> None:
    """Write a Parquet file via a temporary name and rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def rejects_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Normalize reject rows (stage, source, location, field, reason, raw) into the reject schema."""
    clean = [{name: _short(row.get(name)) for name in REJECT_SCHEMA.names} for row in rows]
    return pa.Table.from_pylist(clean, schema=REJECT_SCHEMA)


def _short(value: Any, limit: int = 2000) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit] + "…"


class ArtifactStore:
    """Reads and writes stage artifacts under one run folder."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def stage_dir(self, stage: str) -> Path:
        return self.root / stage

    def work_dir(self, stage: str) -> Path:
        return self.root / "_work" / stage

    def manifest(self, stage: str) -> Manifest | None:
        path = self.stage_dir(stage) / MANIFEST
        if not path.is_file():
            return None
        return Manifest.from_json(path.read_text(encoding="utf-8"))

    def part_paths(self, stage: str) -> list[str]:
        """Parquet files holding a finished stage's rows, in order."""
        manifest = self.manifest(stage)
        if manifest is None:
            raise FileNotFoundError(f"stage {stage!r} has no finished artifact under {self.root}")
        return [str(self.stage_dir(stage) / name) for name in manifest.files]

    def read_table(self, stage: str, columns: list[str] | None = None) -> pa.Table:
        """Read a finished stage's rows into memory (for small artifacts)."""
        paths = self.part_paths(stage)
        if not paths:
            return pa.table({})
        return pa.concat_tables([pq.read_table(p, columns=columns) for p in paths], promote_options="default")

    def read_rejects(self, stage: str) -> pa.Table:
        path = self.stage_dir(stage) / REJECTS
        return pq.read_table(path) if path.is_file() else REJECT_SCHEMA.empty_table()

    def files_dir(self, stage: str) -> Path:
        """Folder for a finished stage's non-tabular outputs."""
        return self.stage_dir(stage) / "files"

    def commit(
        self,
        manifest: Manifest,
        table: pa.Table | None,
        rejects: pa.Table | None = None,
        parts: list[Path] | None = None,
        files_from: Path | None = None,
        started: float | None = None,
    ) -> Manifest:
        """Atomically publish a stage's output; the manifest is the last thing written."""
        final = self.stage_dir(manifest.stage)
        staging = self.root / f".{manifest.stage}.{uuid.uuid4().hex}.staging"
        staging.mkdir(parents=True)
        files: list[str] = []
        if table is not None:
            for index, start in enumerate(range(0, max(table.num_rows, 1), ROWS_PER_PART)):
                name = f"part-{index:05d}.parquet"
                pq.write_table(table.slice(start, ROWS_PER_PART), staging / name)
                files.append(name)
            manifest.counts.setdefault("rows", table.num_rows)
        for part in parts or []:
            name = f"part-{len(files):05d}.parquet"
            os.replace(part, staging / name)
            files.append(name)
        if parts is not None:
            manifest.counts.setdefault("rows", sum(pq.ParquetFile(staging / f).metadata.num_rows for f in files))
        if rejects is not None and rejects.num_rows:
            pq.write_table(rejects, staging / REJECTS)
        manifest.counts.setdefault("rejects", rejects.num_rows if rejects is not None else 0)
        if files_from is not None and files_from.exists():
            shutil.move(str(files_from), staging / "files")
        manifest.files = files
        if started is not None:
            manifest.wall_time_s = round(time.time() - started, 3)
        manifest.finished_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        (staging / MANIFEST).write_text(manifest.to_json(), encoding="utf-8")
        retired = self.root / f".{manifest.stage}.{uuid.uuid4().hex}.retired"
        if final.exists():
            os.replace(final, retired)
        os.replace(staging, final)
        shutil.rmtree(retired, ignore_errors=True)
        return manifest

    def invalidate(self, stage: str) -> None:
        """Remove a stage's artifact (used by --force); its resumable shards are kept."""
        path = self.stage_dir(stage)
        if path.exists():
            retired = self.root / f".{stage}.{uuid.uuid4().hex}.retired"
            os.replace(path, retired)
            shutil.rmtree(retired, ignore_errors=True)
