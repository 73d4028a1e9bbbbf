"""Test helpers: small job configs and a fixed template set for the labeling stages."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

from compeffdist.stage import Stage, StageContext, StageOutput


def stop_ray_by_temp_dir(temp_dir: str) -> None:
    """Stop only the Ray processes of one `ray start --temp-dir` (`ray stop` would kill every Ray here)."""
    import shutil
    import subprocess
    import time

    for signal_name in ("TERM", "KILL"):
        subprocess.run(["pkill", f"-{signal_name}", "-f", temp_dir], capture_output=True)
        time.sleep(2)
    shutil.rmtree(temp_dir, ignore_errors=True)


def write_config(path: Path, payload: dict) -> Path:
    """Write a job config dict as YAML."""
    import yaml

    path.write_text(yaml.safe_dump(payload), encoding="utf-8")
    return path


def tiny_config(tmp_path: Path, data_root: Path, model_dir: Path, **sections) -> dict:
    """A job config that runs in seconds: tiny teacher and student, a handful of texts."""
    config = {
        "run": {"name": "test", "output_dir": str(tmp_path / "run"), "data_root": str(data_root), "seed": 7},
        "ray": {"num_cpus": 2},
        "models": {"teacher": {"name": str(model_dir)}, "student": {"name": str(model_dir)}},
        "engines": {"teacher": {"batch_size": 4, "min_actors": 1, "max_actors": 1, "max_model_len": 512}},
        "pool": {"datasets": ["sc/yelp2", "sc/twitter"], "texts_per_dataset": 12, "max_chars": 400},
        "labeling": {"records": 16, "sampling": {"temperature": 1.0, "max_tokens": 8}},
    }
    for name, value in sections.items():
        config.setdefault(name, {}).update(value)
    return config


FIXED_TEMPLATES = [
    {"template_id": "t-analysis-0", "cluster_id": 0, "kind": "analysis", "task_name": "analysis",
     "task_description": "Please analyze the tone of this text.", "demos": "[]", "perspective": "tone"},
    {"template_id": "t-class-0", "cluster_id": 1, "kind": "classification", "task_name": "polarity",
     "task_description": "Classify the sentiment as positive, negative or neutral. Answer with the label only.",
     "demos": json.dumps([{"input": "Great food!", "output": "positive"}, {"input": "Awful.", "output": "negative"}]),
     "perspective": "overall sentiment"},
]  # fmt: skip


def fixed_templates(ctx: StageContext) -> StageOutput:
    return StageOutput(table=pa.Table.from_pylist(FIXED_TEMPLATES))


def labeling_stages() -> list[Stage]:
    """pool -> (fixed) templates -> records -> responses: the labeling chain without the instruction stages."""
    from compeffdist.data.pool import STAGES as POOL
    from compeffdist.labeling import STAGES as LABELING

    return [*POOL, Stage(name="templates", run=fixed_templates, inputs=("pool",)), *LABELING]
