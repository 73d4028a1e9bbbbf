"""Reading a job config from YAML: relative paths, `--set` overrides, errors that name field and file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from compeffdist.config.job import JobConfig


class ConfigError(Exception):
    """A config file that cannot be used; the message names the file, field path and problem."""


PATH_FIELDS = ("run.output_dir", "run.data_root")


def _resolve_relative_paths(raw: dict[str, Any], base: Path) -> None:
    """Paths in a config file are relative to that file, not to the caller's working dir."""
    run = raw.get("run") or {}
    for key in ("output_dir", "data_root"):
        value = run.get(key)
        if isinstance(value, str) and "://" not in value and not Path(value).is_absolute():
            run[key] = str((base / value).resolve())
    imported = (raw.get("labeling") or {}).get("imported") or {}
    for source in [*((raw.get("pool") or {}).get("files") or []), *(imported.get("files") or [])]:
        if isinstance(source, dict) and isinstance(source.get("path"), str):
            source["path"] = str((base / source["path"]).resolve())


def format_validation_error(path: Path, error: ValidationError, overrides: dict[str, Any] | None = None) -> str:
    """One line per problem, named by field path; a problem in a `--set` value names that argument instead."""
    overrides = overrides or {}
    lines = [f"{path}: {error.error_count()} problem(s) in the config{' or its --set values' if overrides else ''}"]
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"])
        message = item["msg"].removeprefix("Value error, ") + _type_hint(item)
        if not where:  # a rule across sections (the GPU fit check): its message names the fields itself
            given = ", ".join(f"--set {key}={_shown(value)}" for key, value in overrides.items())
            lines.append(f"  {message}" + (f" (with {given})" if given else ""))
            continue
        if item["type"] == "extra_forbidden":
            message = "unknown field (not in the config schema)"
        given = next((key for key in overrides if where == key or where.startswith(key + ".")), None)
        inner = [key for key in overrides if key.startswith(where + ".")]  # a section-level rule broken by --set
        if given is not None:
            inside = f" (at {where})" if where != given else ""
            where = f"--set {given}={_shown(overrides[given])}{inside}"
        elif inner:
            message += " (with " + ", ".join(f"--set {key}={_shown(overrides[key])}" for key in inner) + ")"
        lines.append(f"  {where}: {message}")
    return "\n".join(lines)


def _shown(value: Any) -> str:
    return json.dumps(value, default=str)


def _type_hint(item: Any) -> str:
    """What a strict type error was given, and how YAML gets that wrong (5e-5 is text in YAML 1.1)."""
    if not item["type"].endswith("_type") or item["type"] == "model_type":
        return ""
    value = item["input"]
    hint = f" (got {type(value).__name__} {value!r})"
    if isinstance(value, str) and item["type"] in ("int_type", "float_type"):
        try:
            float(value)
            hint += "; write a number without quotes (YAML reads 5e-5 as text, 5.0e-5 as a number)"
        except ValueError:
            pass
    return hint


def load_config(
    path: str | Path, overrides: dict[str, Any] | None = None, overlays: list[str | Path] | None = None
) -> JobConfig:
    """Load and validate a YAML job config; raise ConfigError with field paths on any problem.

    `overlays` are YAML files merged over it in order, section by section (e.g. the `training:` of a
    GPU class, configs/training/gpu-40gb.yaml); `overrides` (`--set`) come last.
    """
    path = Path(path)
    raw = _read_yaml(path)
    for overlay in overlays or []:
        _merge(raw, _read_yaml(Path(overlay)))
    overrides = dict(overrides or {})
    for dotted, value in overrides.items():
        # An override's relative paths are the caller's: relative to the working directory, not the file.
        if dotted in PATH_FIELDS and isinstance(value, str) and "://" not in value:
            value = str(Path(value).resolve())
        _set_dotted(raw, dotted, value, path)
    try:
        return JobConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(path, exc, overrides)) from exc


def _read_yaml(path: Path) -> dict[str, Any]:
    """A config file's mapping, its relative paths made relative to the file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from exc
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(raw).__name__}")
    _resolve_relative_paths(raw, path.parent.resolve())
    return raw


def _merge(base: dict[str, Any], overlay: dict[str, Any]) -> None:
    """Merge `overlay` into `base`: mappings key by key, anything else replaced."""
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _set_dotted(raw: dict[str, Any], dotted: str, value: Any, path: Path) -> None:
    node = raw
    *parents, leaf = dotted.split(".")
    for index, part in enumerate(parents):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            where = ".".join(parents[: index + 1])
            raise ConfigError(f"--set {dotted}: {where} is {child!r} in {path}, not a section")
        node = child
    node[leaf] = value
