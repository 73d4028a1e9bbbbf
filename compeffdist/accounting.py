"""Run-level accounting: tokens per stage and model, actor-seconds, measured and projected GPU-hours."""

from __future__ import annotations

import json
from typing import Any

from compeffdist.artifacts import ArtifactStore
from compeffdist.config import JobConfig
from compeffdist.redact import redact_text

ACCOUNTING_FILE = "accounting.json"


def build_accounting(config: JobConfig, store: ArtifactStore, stage_names: list[str]) -> dict[str, Any]:
    """Sum what every finished stage's manifest recorded; project GPU-hours for `accounting.gpu_type`.

    A stage that generates is projected from its output tokens at the decode rate (prefill is folded
    into that measured rate); a forward-only stage (scoring) from its prompt tokens at the prefill rate.
    Measured actor-seconds and GPU-hours are what this run's actors were busy for, on this hardware.
    """
    cfg = config.accounting
    stages: dict[str, Any] = {}
    totals = {"prompt_tokens": 0, "output_tokens": 0, "requests": 0, "actor_seconds": 0.0, "gpu_hours": 0.0}
    projected_total = 0.0
    for name in stage_names:
        manifest = store.manifest(name)
        if manifest is None:
            continue
        tokens = manifest.token_totals()
        if tokens["output_tokens"]:
            projected = tokens["output_tokens"] / cfg.output_tokens_per_gpu_second / 3600
        else:
            projected = tokens["prompt_tokens"] / cfg.prompt_tokens_per_gpu_second / 3600
        entry = {
            "wall_time_s": manifest.wall_time_s,
            "models": manifest.models,
            "token_usage": manifest.token_usage,
            "actor_seconds": float(manifest.extra.get("actor_seconds", 0.0)),
            "gpu_hours": float(manifest.extra.get("gpu_hours", 0.0)),
            "projected_gpu_hours": round(projected, 4),
        }
        stages[name] = entry
        for key, value in tokens.items():
            totals[key] += value
        totals["actor_seconds"] += entry["actor_seconds"]
        totals["gpu_hours"] += entry["gpu_hours"]
        projected_total += projected
    return {
        "run": config.run.name,
        "stages": stages,
        "totals": totals,
        "projection": {
            "gpu_type": cfg.gpu_type,
            "assumed_output_tokens_per_gpu_second": cfg.output_tokens_per_gpu_second,
            "assumed_prompt_tokens_per_gpu_second": cfg.prompt_tokens_per_gpu_second,
            "gpu_hours": round(projected_total, 4),
            "usd": round(projected_total * cfg.gpu_hour_usd, 2) if cfg.gpu_hour_usd is not None else None,
        },
    }


def write_accounting(config: JobConfig, store: ArtifactStore, stage_names: list[str]) -> dict[str, Any]:
    report = build_accounting(config, store, stage_names)
    (store.root / ACCOUNTING_FILE).write_text(redact_text(json.dumps(report, indent=2, sort_keys=True)))
    return report
