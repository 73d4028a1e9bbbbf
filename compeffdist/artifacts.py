"""Artifact store: each stage's output is a folder of Parquet parts plus a manifest, published atomically.

Layout under the run's output location (a local folder or a URI such as s3://bucket/runs/x)::

    <stage>/manifest.json                 the commit point: names the data folder; its presence = done
    <stage>/<version>/part-00000.parquet  the stage's rows
    <stage>/<version>/rejects.parquet     rows that could not be used, with the reason (optional)
    <stage>/<version>/files/              non-tabular outputs (a model folder, plots, reports)
    _work/<stage>/                        resumable shards and key of a stage that has not finished

A stage's data goes into a fresh version folder and becomes visible only when the manifest naming
it is written (a rename on disk, one PUT on an object store), then older versions are deleted. A
crash therefore leaves either the old complete artifact or the new one, never half of one, and
this works on object stores, which cannot rename a folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import pyarrow as pa

from compeffdist.redact import redact_text
from compeffdist.storage import Location

MANIFEST = "manifest.json"
REJECTS = "rejects.parquet"
FILES = "files"
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
    version: str = ""  # the data folder this manifest publishes
    files: list[str] = field(default_factory=list)  # Parquet parts, relative to the data folder
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """Identity of the artifact for downstream staleness checks; a re-run is a new version, so it changes."""
        payload = json.dumps(
            [self.stage, self.config_hash, self.input_fingerprints, self.seed, self.counts, self.version, self.files],
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def token_totals(self) -> dict[str, int]:
        """Prompt tokens, output tokens and requests summed over every model the stage used."""
        usage = self.token_usage.values()
        return {key: sum(int(u.get(key, 0)) for u in usage) for key in ("prompt_tokens", "output_tokens", "requests")}

    def to_json(self) -> str:
        """The manifest as written: credentials in model URIs or extras are redacted (the fingerprint is not)."""
        return redact_text(json.dumps({**asdict(self), "fingerprint": self.fingerprint}, indent=2, sort_keys=True))

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """Parse a manifest; fields this version does not know (written by another version) are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in json.loads(text).items() if key in known})


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
    """Reads and writes stage artifacts under one run location (local folder or URI)."""

    def __init__(self, root: str | os.PathLike[str] | Location) -> None:
        self.root = Location.of(root)
        if self.root.is_local:
            self.root.mkdir()

    def stage_dir(self, stage: str) -> Location:
        return self.root / stage

    def work(self, stage: str) -> Location:
        """Where an unfinished stage keeps resumable state (shards, key): on the run's storage, seen by all nodes."""
        return self.root.join("_work", stage)

    def scratch(self, stage: str) -> Path:
        """A local folder for staging files before they are published (the work area itself, for local runs)."""
        if self.root.is_local:
            return self.work(stage).local_path
        from compeffdist.models.registry import cache_root

        run = hashlib.sha256(self.root.uri.encode()).hexdigest()[:12]
        return cache_root() / "scratch" / run / stage

    def manifest(self, stage: str) -> Manifest | None:
        try:
            return Manifest.from_json((self.stage_dir(stage) / MANIFEST).read_text())
        except FileNotFoundError:
            return None

    def _finished(self, stage: str) -> Manifest:
        manifest = self.manifest(stage)
        if manifest is None:
            raise FileNotFoundError(f"stage {stage!r} has no finished artifact under {self.root}")
        return manifest

    def data_dir(self, stage: str, manifest: Manifest | None = None) -> Location:
        """The data folder of a finished stage's current version (pass its manifest if already read)."""
        return self.stage_dir(stage) / (manifest or self._finished(stage)).version

    def parts(self, stage: str) -> list[Location]:
        """Parquet files holding a finished stage's rows, in order."""
        manifest = self._finished(stage)
        data = self.data_dir(stage, manifest)
        return [data / name for name in manifest.files]

    def read_table(self, stage: str, columns: list[str] | None = None) -> pa.Table:
        """Read a finished stage's rows into memory (for small artifacts)."""
        parts = self.parts(stage)
        if not parts:
            return pa.table({})
        return pa.concat_tables([p.read_parquet(columns=columns) for p in parts], promote_options="default")

    def read_rejects(self, stage: str) -> pa.Table:
        manifest = self._finished(stage)
        if not manifest.counts.get("rejects"):
            return REJECT_SCHEMA.empty_table()
        return (self.data_dir(stage, manifest) / REJECTS).read_parquet()

    def files(self, stage: str, manifest: Manifest | None = None) -> Location:
        """The non-tabular outputs of a finished stage, wherever the run lives."""
        return self.data_dir(stage, manifest) / FILES

    def files_dir(self, stage: str) -> Path:
        """The same as a local folder: itself for local runs, else a cached download of this version."""
        manifest = self._finished(stage)
        files = self.files(stage, manifest)
        if files.is_local:
            return files.local_path
        cache = self.scratch(stage).parent
        local = cache / f"{stage}-{manifest.version}-files"
        if not local.is_dir():
            cache.mkdir(parents=True, exist_ok=True)
            for older in cache.glob(f"{stage}-*-files"):  # one cached version per stage is enough
                shutil.rmtree(older, ignore_errors=True)
            files.download(local)
        return local

    def commit(
        self,
        manifest: Manifest,
        table: pa.Table | None,
        rejects: pa.Table | None = None,
        parts: list[Location] | None = None,
        files_from: Path | None = None,
        started: float | None = None,
        rows_per_part: int = ROWS_PER_PART,
        fence: Callable[[], None] | None = None,
    ) -> Manifest:
        """Publish a stage's output: data into a new version folder, then the manifest, then old versions go.

        `fence` runs right before the manifest write (the commit point) and raises to stop the publish,
        e.g. when this run no longer holds the output's lease; the unpublished version folder is removed later.
        """
        stage_dir = self.stage_dir(manifest.stage)
        manifest.version = f"v{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
        data = stage_dir / manifest.version
        data.mkdir()
        names: list[str] = []
        if table is not None:
            for start in range(0, max(table.num_rows, 1), rows_per_part):
                names.append(f"part-{len(names):05d}.parquet")
                (data / names[-1]).write_parquet(table.slice(start, rows_per_part))
            manifest.counts.setdefault("rows", table.num_rows)
        for part in parts or []:
            names.append(f"part-{len(names):05d}.parquet")
            part.fs.move(part.path, (data / names[-1]).path)
        if parts is not None and "rows" not in manifest.counts:
            manifest.counts["rows"] = sum((data / name).parquet_rows() for name in names)
        if rejects is not None and rejects.num_rows:
            (data / REJECTS).write_parquet(rejects)
        manifest.counts.setdefault("rejects", rejects.num_rows if rejects is not None else 0)
        if files_from is not None and files_from.exists() and any(files_from.iterdir()):
            (data / FILES).upload(files_from)
        manifest.files = names
        if started is not None:
            manifest.wall_time_s = round(time.time() - started, 3)
        manifest.finished_at = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        if fence is not None:
            fence()
        (stage_dir / MANIFEST).write_text(manifest.to_json())
        for old in stage_dir.list_dirs():
            if old.name != manifest.version:
                old.delete()
        return manifest
