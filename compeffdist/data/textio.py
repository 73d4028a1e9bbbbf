"""Readers for user text files, by format: every bad row becomes a reject naming file, row and field, never fatal.

Formats (from the extension, or an explicit `format:` in the config):

- jsonl: one JSON record (or string) per line;
- json: a list of records (or strings), an object holding one such list (``{"data": [...]}``), or
  columns (``{"text": [...], "label": [...]}``);
- csv / tsv: a header row, the text column by name (Python's csv module: quoted fields may hold
  delimiters and line breaks);
- parquet: only the text column is read, batch by batch;
- text: one text per line.

Only the text field is taken: ids, labels and other columns never enter the text. A UTF-8 BOM is
skipped; non-UTF-8 bytes, empty texts, missing fields, wrong types and malformed rows become reject
records ``(source, location, field, reason, raw)``. `ReadResult.records` counts the records seen,
usable or not, so an empty file can be told from a file of bad rows.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

TextFormat = Literal["jsonl", "json", "csv", "tsv", "parquet", "text"]
SUFFIX_FORMATS: dict[str, TextFormat] = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv",
    ".parquet": "parquet", ".txt": "text",
}  # fmt: skip
PARQUET_BATCH_ROWS = 8192
CSV_FIELD_LIMIT = 1 << 24  # the csv module's default (128 KiB) would reject long reviews


def format_of(path: Path) -> TextFormat:
    """The format a file's extension names; ValueError naming the known extensions and formats otherwise."""
    found = SUFFIX_FORMATS.get(Path(path).suffix.lower())
    if found is None:
        raise ValueError(
            f"cannot tell the format of {str(path)!r} from its extension ({Path(path).suffix or 'none'}): "
            f"use one of {', '.join(SUFFIX_FORMATS)}, or set format: to one of {', '.join(get_args(TextFormat))}"
        )
    return found


@dataclass
class ReadResult:
    rows: list[dict[str, Any]] = field(default_factory=list)  # {"text": str, "location": str}
    rejects: list[dict[str, Any]] = field(default_factory=list)
    records: int = 0  # records seen, usable or not (0: the file holds nothing)


class _Collector:
    """Collects one file's usable texts and rejects."""

    def __init__(self, path: Path, text_field: str) -> None:
        self.source = str(path)
        self.text_field = text_field
        self.result = ReadResult()

    def reject(self, location: str, field: str, reason: str, raw: Any = None) -> None:
        row = {"source": self.source, "location": location, "field": field, "reason": reason}
        self.result.rejects.append({**row, "raw": raw} if raw is not None else row)

    def decode(self, raw: bytes, location: str) -> str | None:
        try:
            return raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            self.reject(location, "<bytes>", f"not valid UTF-8 at byte {exc.start}", raw[:200].decode(errors="replace"))
            return None

    def take_record(self, record: Any, location: str) -> None:
        """A JSON value: a string is the text itself, an object holds it under `text_field`."""
        if isinstance(record, dict):
            if self.text_field not in record:
                self.reject(location, self.text_field, "field missing", record)
                return
            self.take(record[self.text_field], location, record)
        elif isinstance(record, str):
            self.take(record, location)
        else:
            self.reject(location, self.text_field, f"expected an object or string, got {type(record).__name__}", record)

    def take(self, text: Any, location: str, raw: Any = None) -> None:
        """One text value: kept if it is a non-empty string once NUL bytes and outer whitespace are gone."""
        raw = text if raw is None else raw
        if text is None:
            self.reject(location, self.text_field, "missing (null)", raw)
            return
        if not isinstance(text, str):
            self.reject(location, self.text_field, f"expected a string, got {type(text).__name__}", raw)
            return
        text = text.replace("\x00", "").strip()
        if not text:
            self.reject(location, self.text_field, "empty text", raw)
            return
        self.result.rows.append({"text": text, "location": location})


def read_texts(path: Path, text_field: str = "text", format: TextFormat | None = None) -> ReadResult:
    """Read the texts of a user file in `format` (None: from its extension); see the module doc."""
    path = Path(path)
    collector = _Collector(path, text_field)
    try:
        kind = format or format_of(path)
    except ValueError as exc:
        collector.reject("-", "<file>", str(exc))
        return collector.result
    try:
        if kind == "parquet":
            _read_parquet(path, collector)
            return collector.result
        data = path.read_bytes()
    except OSError as exc:
        collector.reject("-", "<file>", f"cannot read: {exc}")
        return collector.result
    if kind == "json":
        _read_json(data, collector)
    elif kind in ("csv", "tsv"):
        _read_delimited(data, "," if kind == "csv" else "\t", collector)
    else:
        _read_lines(data, kind == "jsonl", collector)
    return collector.result


def _read_lines(data: bytes, is_jsonl: bool, collector: _Collector) -> None:
    for number, raw_line in enumerate(data.splitlines(), 1):
        location = f"line {number}"
        if not raw_line.strip():
            continue
        collector.result.records += 1
        line = collector.decode(raw_line, location)
        if line is None:
            continue
        if not is_jsonl:
            collector.take(line, location)
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            collector.reject(location, "<json>", f"malformed JSON: {exc.msg}", line)
            continue
        collector.take_record(record, location)


def _read_json(data: bytes, collector: _Collector) -> None:
    text = collector.decode(data, "file")
    if text is None:
        return
    if not text.strip():
        return
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        collector.reject(f"line {exc.lineno}", "<json>", f"malformed JSON: {exc.msg}")
        return
    records = _json_records(document, collector)
    if records is None:
        return
    collector.result.records = len(records)
    for index, record in enumerate(records):
        collector.take_record(record, f"item {index}")


def _json_records(document: Any, collector: _Collector) -> list[Any] | None:
    """The records of a JSON document: a list, an object holding one list, or an object of columns."""
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        column = document.get(collector.text_field)
        if isinstance(column, list):  # columns: only the text column is read
            return column
        lists = [key for key, value in document.items() if isinstance(value, list)]
        if len(lists) == 1:
            return document[lists[0]]
        reason = f"expected a list of records, an object holding one list, or a {collector.text_field!r} column; "
        reason += f"the object's lists: {lists}" if lists else "the object holds no list"
        collector.reject("file", "<json>", reason)
        return None
    collector.reject("file", "<json>", f"expected a list of records, got {type(document).__name__}")
    return None


def _read_delimited(data: bytes, delimiter: str, collector: _Collector) -> None:
    """CSV/TSV with a header row; the text column by name. Bad bytes stay per cell (surrogateescape)."""
    text = data.decode("utf-8-sig", errors="surrogateescape")
    csv.field_size_limit(CSV_FIELD_LIMIT)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        collector.reject("line 1", "<header>", f"malformed header: {exc}")
        return
    if header is None:
        return
    names = [name.strip() for name in header]
    if names.count(collector.text_field) != 1:
        problem = "appears twice" if collector.text_field in names else "is missing"
        collector.reject("line 1", collector.text_field, f"column {problem}; the header has {names}")
        return
    column = names.index(collector.text_field)
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            collector.reject(f"line {start}", "<csv>", f"malformed row: {exc}")
            if reader.line_num < start:  # no progress: stop rather than loop
                break
            continue
        if not row or row == [""]:
            continue
        location = f"line {start}"
        collector.result.records += 1
        if len(row) != len(names):
            reason = f"{len(row)} fields where the header has {len(names)} (an unquoted delimiter or quote?)"
            collector.reject(location, collector.text_field, reason, _printable(delimiter.join(row)))
            continue
        value = row[column]
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            reason = f"not valid UTF-8 at character {exc.start}"
            collector.reject(location, collector.text_field, reason, _printable(value))
            continue
        collector.take(value, location)


def _printable(value: str) -> str:
    return value.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")


def _read_parquet(path: Path, collector: _Collector) -> None:
    """The text column of a Parquet file, batch by batch; other columns are never read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        collector.reject("-", "<file>", f"not a readable Parquet file: {exc}")
        return
    schema = parquet.schema_arrow
    if collector.text_field not in schema.names:
        collector.reject("-", collector.text_field, f"column is missing; the file has {schema.names}")
        return
    kind = schema.field(collector.text_field).type
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    is_binary = pa.types.is_binary(kind) or pa.types.is_large_binary(kind)
    if not (is_binary or pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)):
        collector.reject("-", collector.text_field, f"column holds {kind}, not text")
        return
    offset = 0
    for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=[collector.text_field]):
        for index, value in enumerate(batch.column(0).to_pylist()):
            location = f"row {offset + index + 1}"
            if is_binary and value is not None:
                value = collector.decode(value, location)
                if value is None:
                    continue
            collector.take(value, location)
        offset += batch.num_rows
    collector.result.records = offset
