"""What every benchmark shares: where results go and how they are written (JSON + markdown, never committed)."""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
DATA_ROOT = REPO.parent / "shared" / "data" / "sentibench"
# The experiments' small evaluation subset: every task group (basic, multifaceted, fine-grained) is represented.
EXPERIMENT_DATASETS = ["sc/sst2", "sc/twitter", "multifaced/irony18", "multifaced/tweeteval", "absa/atsa_rest16"]


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


def logger(name: str) -> Callable[[str], None]:
    """A timestamped progress printer for benchmark `name`."""

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {name}: {message}", flush=True)

    return log


def chain_parser(description: str, name: str, records: int, heldout: float, limit: int) -> argparse.ArgumentParser:
    """The arguments of an experiment over one shared teacher-labeled chain (pool size, held-out share,
    SentiBench subset and examples, output folder `runs/<name>`, overrides); the script adds its own."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "local.yaml")
    parser.add_argument("--records", type=int, default=records, help="teacher-labeled pool size")
    parser.add_argument("--heldout", type=float, default=heldout, help="evaluation.heldout.fraction")
    parser.add_argument("--datasets", nargs="+", default=EXPERIMENT_DATASETS)
    parser.add_argument("--limit", type=int, default=limit, help="SentiBench test examples per dataset")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / name)
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override for every run")
    return parser


def chain_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config overrides `chain_parser`'s arguments stand for (`--set` first, so the arguments win)."""
    from compeffdist.cli import parse_overrides

    return {
        **parse_overrides(args.set),
        "labeling.records": args.records,
        "evaluation.heldout.fraction": args.heldout,
        "evaluation.datasets": args.datasets,
        "evaluation.limit": args.limit,
    }
