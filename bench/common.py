"""What every benchmark shares: where results go and how they are written (JSON + markdown, never committed)."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
DATA_ROOT = REPO.parent / "shared" / "data" / "sentibench"


def markdown_table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    """A markdown table of `rows`, one column per (key, heading)."""
    lines = ["| " + " | ".join(h for _, h in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row.get(k, "")) for k, _ in columns) + " |" for row in rows]
    return "\n".join(lines)


def write_results(
    name: str, rows: list[dict[str, Any]], columns: list[tuple[str, str]], context: dict[str, Any]
) -> None:
    """Write bench/results/<name>.json (rows + context + machine) and <name>.md, and print the table."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    machine = {"python": platform.python_version(), "machine": platform.machine(), "node": platform.node()}
    payload = {"benchmark": name, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "context": context,
               "machine": machine, "rows": rows}  # fmt: skip
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2, default=str))
    table = markdown_table(rows, columns)
    settings = ", ".join(f"{k}={v}" for k, v in context.items())
    (RESULTS / f"{name}.md").write_text(f"## {name}\n\n{settings}\n\n{table}\n")
    print(table)


def seed_folder(source: Path, target: Path, stages: list[str]) -> None:
    """Copy finished stage artifacts into a new run folder (their manifests stay valid there)."""
    import shutil

    target.mkdir(parents=True, exist_ok=True)
    for stage in stages:
        if not (target / stage).exists():
            shutil.copytree(source / stage, target / stage)


def run_pipeline(config_path: Path, overrides: dict[str, Any], until: str | None = None) -> Any:
    """Run (or resume) the pipeline of `config_path` with `overrides` up to `until`; returns the Runner."""
    from compeffdist.config import load_config
    from compeffdist.pipeline import Runner
    from compeffdist.raysession import ensure_ray

    config = load_config(config_path, overrides)
    ensure_ray(config.ray)
    runner = Runner(config)
    runner.run(until=until)
    return runner


def stages_until(runner: Any, last: str) -> list[str]:
    """Names of the runner's stages up to and including `last`."""
    names = [s.name for s in runner.stages]
    return names[: names.index(last) + 1]
