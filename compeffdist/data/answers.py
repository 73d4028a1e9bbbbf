"""Reading teacher answers a user already has: records of instruction + response, streamed in batches.

Formats as for pool files (data/textio.py): JSONL (line by line), JSON (a list of records, or an
object holding one), CSV/TSV (header row, streamed by the csv module), Parquet (row groups, only
the named columns). The paper's released training sets (`Meta-Llama-3.1-70B-Instruct_50k.jsonl`
and the others) are JSONL with `instruction` and `output`.

A reader yields `(location, record)` pairs, where a record is a dict of the requested fields (a
missing field is absent, never invented) or None when the row itself is unreadable (bad JSON, bad
bytes, wrong number of CSV fields); the caller turns those into rejects naming file, row, field.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from compeffdist.data.textio import CSV_FIELD_LIMIT, PARQUET_BATCH_ROWS, TextFormat, format_of

Row = tuple[str, dict[str, Any] | str]  # (location, record) or (location, why it is unreadable)


def read_answer_records(path: Path, fields: list[str], format: TextFormat | None = None) -> Iterator[Row]:
    """Every record of `path` as (location, {field: value}) or (location, reason) when unreadable."""
    kind = format or format_of(path)
    if kind == "jsonl":
        yield from _jsonl(path, fields)
    elif kind == "json":
        yield from _json(path, fields)
    elif kind in ("csv", "tsv"):
        yield from _delimited(path, fields, "," if kind == "csv" else "\t")
    elif kind == "parquet":
        yield from _parquet(path, fields)
    else:
        raise ValueError(f"{path}: teacher answers need records with named fields, not {kind!r}")


def _pick(record: Any, fields: list[str]) -> dict[str, Any] | str:
    if not isinstance(record, dict):
        return f"expected a record (object), got {type(record).__name__}"
    return {name: record[name] for name in fields if name in record}


def _jsonl(path: Path, fields: list[str]) -> Iterator[Row]:
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            location = f"line {number}"
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
                yield location, _pick(json.loads(text), fields)
            except UnicodeDecodeError as exc:
                yield location, f"not valid UTF-8 at byte {exc.start}"
            except json.JSONDecodeError as exc:
                yield location, f"not valid JSON: {exc.msg} at column {exc.colno}"


def _json(path: Path, fields: list[str]) -> Iterator[Row]:
    try:
        document = json.loads(path.read_bytes().decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        yield "file", f"not valid JSON: {exc}"
        return
    if isinstance(document, dict):
        lists = [value for value in document.values() if isinstance(value, list)]
        document = lists[0] if len(lists) == 1 else document
    if not isinstance(document, list):
        yield "file", "expected a list of records (or an object holding one)"
        return
    for index, record in enumerate(document):
        yield f"item {index}", _pick(record, fields)


def _delimited(path: Path, fields: list[str], delimiter: str) -> Iterator[Row]:
    csv.field_size_limit(CSV_FIELD_LIMIT)
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        header = reader.fieldnames or []
        line = 1
        for row in reader:
            location = f"line {line + 1}"
            line = reader.line_num
            if None in row:  # more fields than the header has
                yield location, f"more fields than the header's {len(header)} (an unquoted delimiter or quote?)"
                continue
            picked = {name: row[name] for name in fields if name in row and row[name] is not None}
            try:
                for value in picked.values():
                    value.encode("utf-8")
            except UnicodeEncodeError as exc:
                yield location, f"not valid UTF-8 at character {exc.start}"
                continue
            yield location, picked


def _parquet(path: Path, fields: list[str]) -> Iterator[Row]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    columns = [name for name in fields if name in parquet.schema_arrow.names]
    offset = 0
    for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=columns):
        for index, record in enumerate(batch.to_pylist()):
            yield f"row {offset + index}", {k: v for k, v in record.items() if v is not None}
        offset += batch.num_rows
