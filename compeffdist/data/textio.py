"""Tolerant readers for user text files: every bad row is reported with file, line and field, never fatal.

Handles a UTF-8 BOM, non-UTF-8 bytes, empty texts and malformed JSON/JSONL rows. Good rows are
returned; bad ones come back as reject records (source, location, field, reason, raw).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class ReadResult:
    rows: list[dict[str, Any]] = field(default_factory=list)  # {"text": str, "location": str, **extra}
    rejects: list[dict[str, Any]] = field(default_factory=list)


def _decode(raw: bytes, source: str, location: str, result: ReadResult) -> str | None:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        result.rejects.append(
            {
                "source": source,
                "location": location,
                "field": "<bytes>",
                "reason": f"not valid UTF-8 at byte {exc.start}",
                "raw": raw[:200].decode("utf-8", errors="replace"),
            }
        )
        return None


def _take_text(
    record: Any, text_field: str, source: str, location: str, result: ReadResult, extra: dict[str, Any]
) -> None:
    if isinstance(record, str):
        text: Any = record
    elif isinstance(record, dict):
        if text_field not in record:
            result.rejects.append(
                {"source": source, "location": location, "field": text_field, "reason": "field missing", "raw": record}
            )
            return
        text = record[text_field]
    else:
        result.rejects.append(
            {
                "source": source,
                "location": location,
                "field": text_field,
                "reason": f"expected an object or string, got {type(record).__name__}",
                "raw": record,
            }
        )
        return
    if not isinstance(text, str):
        reason = f"expected a string, got {type(text).__name__}"
        result.rejects.append(
            {"source": source, "location": location, "field": text_field, "reason": reason, "raw": record}
        )
        return
    text = text.replace("\x00", "").strip()
    if not text:
        result.rejects.append(
            {"source": source, "location": location, "field": text_field, "reason": "empty text", "raw": record}
        )
        return
    result.rows.append({"text": text, "location": location, **extra})


def read_texts(path: Path, text_field: str = "text") -> ReadResult:
    """Read texts from .jsonl (one object per line), .json (a list) or .txt (one text per line)."""
    result = ReadResult()
    source = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        result.rejects.append({"source": source, "location": "-", "field": "<file>", "reason": f"cannot read: {exc}"})
        return result
    suffix = path.suffix.lower()
    if suffix == ".json":
        text = _decode(data, source, "file", result)
        if text is None:
            return result
        try:
            records = json.loads(text)
        except json.JSONDecodeError as exc:
            result.rejects.append(
                {
                    "source": source,
                    "location": f"line {exc.lineno}",
                    "field": "<json>",
                    "reason": f"malformed JSON: {exc.msg}",
                }
            )
            return result
        if not isinstance(records, list):
            result.rejects.append(
                {"source": source, "location": "file", "field": "<json>", "reason": "expected a JSON list of records"}
            )
            return result
        for index, record in enumerate(records):
            _take_text(record, text_field, source, f"item {index}", result, {})
        return result
    for number, raw_line in enumerate(data.splitlines(), 1):
        location = f"line {number}"
        line = _decode(raw_line, source, location, result)
        if line is None or not line.strip():
            continue
        if suffix == ".jsonl":
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                result.rejects.append(
                    {
                        "source": source,
                        "location": location,
                        "field": "<json>",
                        "reason": f"malformed JSON: {exc.msg}",
                        "raw": line,
                    }
                )
                continue
            _take_text(record, text_field, source, location, result, {})
        else:
            _take_text(line, text_field, source, location, result, {})
    return result
