"""Where a run's files live: a local folder, or a URI (s3://, gs://, hdfs://, abfs://) on a pyarrow filesystem.

Everything the pipeline keeps (artifacts, manifests, resumable shards, Ray Train checkpoints) goes
through a `Location`, so the same code writes to a laptop's disk and to a bucket that every node of
a cluster sees. A Location is plain data (its URI string) when it crosses to a Ray actor: the
actor resolves the filesystem again, with credentials from its own environment.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq


def is_uri(value: str | os.PathLike[str]) -> bool:
    """True for 's3://bucket/x' and the like; False for plain local paths, absolute or relative."""
    return "://" in str(value)


@dataclass(frozen=True)
class Location:
    """A folder on a filesystem: `uri` is what users write (a local path or a URI with its query options)."""

    uri: str

    @classmethod
    def of(cls, value: str | os.PathLike[str] | Location) -> Location:
        """A Location for a path or URI; `file://` URIs become plain local paths (atomic renames work there)."""
        if isinstance(value, Location):
            return value
        text = str(value).removeprefix("file://")
        return cls(text if is_uri(text) else str(Path(text).absolute()))

    @cached_property
    def _resolved(self) -> tuple[pafs.FileSystem, str]:
        if not is_uri(self.uri):
            return pafs.LocalFileSystem(), self.uri
        # from_uri consumes the query (endpoint_override, region...); `join` carries it to child locations.
        filesystem, path = pafs.FileSystem.from_uri(self.uri)
        return filesystem, path.rstrip("/")

    @property
    def fs(self) -> pafs.FileSystem:
        return self._resolved[0]

    @property
    def path(self) -> str:
        """The path inside `fs` (no scheme, no query)."""
        return self._resolved[1]

    @property
    def is_local(self) -> bool:
        return not is_uri(self.uri)

    @property
    def local_path(self) -> Path:
        """The folder as a pathlib Path; only for local locations."""
        if not self.is_local:
            raise ValueError(f"{self.uri} is not a local folder")
        return Path(self.uri)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def join(self, *parts: str) -> Location:
        """A child location; URIs keep their query options (endpoint, region) after the new path."""
        suffix = "/".join(p.strip("/") for p in parts if p)
        if self.is_local:
            return Location(str(Path(self.uri, suffix)))
        base, sep, query = self.uri.partition("?")
        child = Location(f"{base.rstrip('/')}/{suffix}{sep}{query}")
        # Share the parent's filesystem client: resolving a URI again builds a new one (credential and
        # region look-ups on S3), and joins happen per shard and per listed file.
        child.__dict__["_resolved"] = (self.fs, f"{self.path}/{suffix}")
        return child

    def __truediv__(self, part: str) -> Location:
        return self.join(part)

    def __str__(self) -> str:
        return self.uri

    # -- queries ------------------------------------------------------------------------------------

    def _info(self) -> pafs.FileInfo:
        return self.fs.get_file_info(self.path)

    def exists(self) -> bool:
        return self._info().type != pafs.FileType.NotFound

    def is_file(self) -> bool:
        return self._info().type == pafs.FileType.File

    def list_files(self, suffix: str = "", recursive: bool = False) -> list[Location]:
        """Files directly in this folder (or below it), sorted by name; [] when the folder does not exist."""
        selector = pafs.FileSelector(self.path, allow_not_found=True, recursive=recursive)
        infos = [i for i in self.fs.get_file_info(selector) if i.type == pafs.FileType.File]
        infos = sorted((i for i in infos if i.path.endswith(suffix)), key=lambda i: i.path)
        return [self.join(i.path[len(self.path) :]) for i in infos]

    def list_dirs(self) -> list[Location]:
        selector = pafs.FileSelector(self.path, allow_not_found=True)
        infos = [i for i in self.fs.get_file_info(selector) if i.type == pafs.FileType.Directory]
        return [self.join(i.base_name) for i in sorted(infos, key=lambda i: i.path)]

    # -- reading and writing ------------------------------------------------------------------------

    def mkdir(self) -> None:
        self.fs.create_dir(self.path, recursive=True)

    def read_text(self) -> str:
        with self.fs.open_input_stream(self.path) as stream:
            return stream.read().decode("utf-8")

    def _write_local_atomically(self, write: Callable[[Path], None]) -> None:
        """`write` a temporary file beside this one, then rename it into place."""
        path = self.local_path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        write(tmp)
        os.replace(tmp, path)

    def write_text(self, text: str) -> None:
        """Replace the file's content; readers see the old or the new text, never half of one.

        Local files go through a temporary name and a rename; object stores make one PUT visible at once.
        """
        if self.is_local:
            self._write_local_atomically(lambda tmp: tmp.write_text(text, encoding="utf-8"))
            return
        with self.fs.open_output_stream(self.path) as stream:
            stream.write(text.encode("utf-8"))

    def read_parquet(self, columns: list[str] | None = None) -> pa.Table:
        return pq.read_table(self.path, columns=columns, filesystem=self.fs)

    def parquet_rows(self) -> int:
        with self.fs.open_input_file(self.path) as handle:
            return pq.ParquetFile(handle).metadata.num_rows

    def iter_batches(self, rows: int) -> Iterator[pa.Table]:
        """The Parquet file's rows, `rows` at a time (memory bounded by the batch, not the file)."""
        with self.fs.open_input_file(self.path) as handle:
            for batch in pq.ParquetFile(handle).iter_batches(batch_size=rows):
                yield pa.Table.from_batches([batch])

    @contextmanager
    def parquet_writer(self) -> Iterator[ParquetSink]:
        """A Parquet file written batch by batch; it appears (atomically on disk) only if something was written."""
        sink = ParquetSink(self)
        try:
            yield sink
        finally:
            sink.close()

    def parquet_schema(self) -> pa.Schema:
        """The Arrow schema of a Parquet file, from its footer (no rows read)."""
        with self.fs.open_input_file(self.path) as handle:
            return pq.ParquetFile(handle).schema_arrow

    def write_parquet(self, table: pa.Table) -> None:
        """Write a Parquet file atomically (temporary name + rename locally; one PUT on object stores)."""
        if self.is_local:
            self._write_local_atomically(lambda tmp: pq.write_table(table, tmp))
            return
        pq.write_table(table, self.path, filesystem=self.fs)

    def delete(self) -> None:
        """Remove this folder (or file) and everything under it; missing is fine."""
        info = self._info()
        if info.type == pafs.FileType.Directory:
            if self.is_local:
                shutil.rmtree(self.local_path, ignore_errors=True)
            else:
                self.fs.delete_dir(self.path)
        elif info.type == pafs.FileType.File:
            self.fs.delete_file(self.path)

    def upload(self, local_dir: Path) -> None:
        """Copy a local folder's content to this location (moved when this location is local too)."""
        if self.is_local:
            self.local_path.parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(self.local_path, ignore_errors=True)
            shutil.move(str(local_dir), self.local_path)
            return
        local = pafs.LocalFileSystem()
        pafs.copy_files(str(local_dir), self.path, source_filesystem=local, destination_filesystem=self.fs)

    def download(self, local_dir: Path) -> Path:
        """Copy this folder to `local_dir` (staged, then renamed) and return `local_dir`."""
        staging = local_dir.with_name(f".{local_dir.name}.{uuid.uuid4().hex}.staging")
        staging.mkdir(parents=True)  # copy_files creates sub-folders but not the destination itself
        local = pafs.LocalFileSystem()
        pafs.copy_files(self.path, str(staging), source_filesystem=self.fs, destination_filesystem=local)
        shutil.rmtree(local_dir, ignore_errors=True)
        os.replace(staging, local_dir)
        return local_dir

    def ray_storage(self) -> dict[str, Any]:
        """Keyword arguments for ray.train.RunConfig: where checkpoints persist."""
        if self.is_local:
            return {"storage_path": self.uri}
        return {"storage_path": self.path, "storage_filesystem": self.fs}


class ParquetSink:
    """Writes tables to one Parquet file as they come; the file is created on the first write.

    Local files are written under a temporary name and renamed into place on close; object stores
    make the object visible when its upload completes.
    """

    def __init__(self, location: Location) -> None:
        self.location = location
        self._writer: pq.ParquetWriter | None = None
        self._tmp: Path | None = None

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            if self.location.is_local:
                path = self.location.local_path
                path.parent.mkdir(parents=True, exist_ok=True)
                self._tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
                self._writer = pq.ParquetWriter(self._tmp, table.schema)
            else:
                self._writer = pq.ParquetWriter(self.location.path, table.schema, filesystem=self.location.fs)
        self._writer.write_table(table)

    def close(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        if self._tmp is not None:
            os.replace(self._tmp, self.location.local_path)
        self._writer = None
