"""Test helpers: small job configs and a fixed template set for the labeling stages."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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
        "engines": {
            "teacher": {"max_model_len": 512, "resources": {"batch_size": 4, "min_actors": 1, "max_actors": 1}}
        },
        "pool": {"datasets": ["sc/yelp2", "sc/twitter"], "texts_per_dataset": 12, "max_chars": 400},
        "labeling": {"records": 16, "sampling": {"temperature": 1.0, "max_tokens": 8}},
    }
    for name, value in sections.items():
        config.setdefault(name, {}).update(value)
    return config


FIXED_TEMPLATES = [
    {"template_id": "t-analysis-0", "cluster_id": 0, "kind": "analysis", "task_name": "analysis",
     "task_description": "Please analyze the tone of this text.", "demos": [], "perspective": "tone"},
    {"template_id": "t-class-0", "cluster_id": 1, "kind": "classification", "task_name": "polarity",
     "task_description": "Classify the sentiment as positive, negative or neutral. Answer with the label only.",
     "demos": [{"input": "Great food!", "output": "positive"}, {"input": "Awful.", "output": "negative"}],
     "perspective": "overall sentiment"},
]  # fmt: skip


def fixed_templates(ctx: StageContext) -> StageOutput:
    return StageOutput(table=pa.Table.from_pylist(FIXED_TEMPLATES))


def labeling_stages() -> list[Stage]:
    """pool -> (fixed) templates -> records -> responses: the labeling chain without the instruction stages."""
    from compeffdist.data.pool import STAGES as POOL
    from compeffdist.labeling import STAGES as LABELING

    return [*POOL, Stage(name="templates", run=fixed_templates, inputs=("pool",)), *LABELING]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


PRIVATE_PORT_OPTIONS = (
    "dashboard-agent-listen-port",
    "dashboard-agent-grpc-port",
    "runtime-env-agent-port",
    "metrics-export-port",
    "ray-client-server-port",
)


def start_ray_head(args: list[str], env: dict[str, str] | None = None) -> tuple[str, str]:
    """`ray start --head ARGS` under a fresh /tmp/ray-* temp dir; returns (temp_dir, "") or (temp_dir, error text).

    Ray's socket paths must stay under 107 bytes, so the temp dir is short and under /tmp (pytest's
    tmp_path is too deep). Every port with a fixed default (dashboard agent 52365, client server 10001...)
    gets a free one: another Ray on this machine may hold the default, and the head then starts without
    e.g. a job agent. Stop it with stop_ray_by_temp_dir(temp_dir).
    """
    import os
    import subprocess
    import sys
    import tempfile

    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    ray = str(Path(sys.executable).with_name("ray"))
    ports = [
        f"--{name}={free_port()}" for name in PRIVATE_PORT_OPTIONS if not any(a.startswith(f"--{name}") for a in args)
    ]
    command = [ray, "start", "--head", f"--temp-dir={temp_dir}", "--disable-usage-stats", *ports, *args]
    full_env = {**os.environ, "RAY_AUTH_MODE": "disabled", **(env or {})}
    started = subprocess.run(command, env=full_env, capture_output=True, text=True, timeout=180)
    if started.returncode != 0:
        stop_ray_by_temp_dir(temp_dir)
        return temp_dir, (started.stderr or started.stdout)[-2000:]
    return temp_dir, ""


@contextmanager
def dashboard_head(num_cpus: int = 2) -> Iterator[tuple[str, str]]:
    """A real `ray start --head` with the dashboard (Job Submission and state APIs); yields (GCS address, URL).

    Skips the calling test, printing why, when the head cannot start; stops only this head afterwards.
    """
    import pytest

    port, dashboard = free_port(), free_port()
    temp_dir, error = start_ray_head(
        [f"--port={port}", f"--num-cpus={num_cpus}", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
         f"--dashboard-port={dashboard}"]
    )  # fmt: skip
    if error:
        print(f"SKIP: could not start a local Ray head: {error}")
        pytest.skip(f"could not start a local Ray head: {error[-500:]}")
    try:
        yield f"127.0.0.1:{port}", f"http://127.0.0.1:{dashboard}"
    finally:
        stop_ray_by_temp_dir(temp_dir)
