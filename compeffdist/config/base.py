"""The base of every config section, and what decides a stage's identity (resources never do)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Base for every config section: unknown keys are rejected, and values are never coerced.

    `strict=True`: `true` is not 1 and `"100"` is not a number. Fields whose YAML form is another type
    (paths from strings, tuples from lists) opt out one by one with `Field(strict=False)`.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, strict=True)


NOT_IDENTITY = {"identity": False}
"""`json_schema_extra` of a field that never changes a stage's output (cadence, paths, exact-either-way chunking):
it stays out of the stage's staleness hash, so changing it keeps finished artifacts and resumable shards."""


def identity(value: Any) -> Any:
    """The JSON-able part of a config value that decides outputs: NOT_IDENTITY fields dropped, recursively."""
    if isinstance(value, BaseModel):
        fields = type(value).model_fields
        return {
            name: identity(getattr(value, name))
            for name, info in fields.items()
            if not (isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get("identity") is False)
        }
    if isinstance(value, list | tuple):
        return [identity(v) for v in value]
    if isinstance(value, dict):
        return {k: identity(v) for k, v in value.items()}
    return value.as_posix() if isinstance(value, Path) else value
