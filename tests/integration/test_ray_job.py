"""`ray job submit` against a real local head (dashboard + Job Submission API), as on a cluster."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from helpers import stop_ray_by_temp_dir, tiny_config, write_config

from compeffdist.artifacts import ArtifactStore

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
RAY = Path(sys.executable).with_name("ray")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def ray_head():
    """A real `ray start --head` with the dashboard (which serves the Job Submission API)."""
    dashboard = _free_port()
    # Ray's socket paths must stay under 107 bytes: pytest's tmp_path is too deep.
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    command = [
        str(RAY), "start", "--head", f"--port={_free_port()}", "--num-cpus=2", "--include-dashboard=true",
        "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}", f"--temp-dir={temp_dir}",
        "--disable-usage-stats",
    ]  # fmt: skip
    started = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    if started.returncode != 0:
        pytest.skip(f"could not start a local Ray head: {started.stderr[-500:]}")
    try:
        yield f"http://127.0.0.1:{dashboard}"
    finally:
        stop_ray_by_temp_dir(temp_dir)


def _wait(client, job_id: str, timeout: float = 300) -> None:
    from ray.job_submission import JobStatus

    terminal = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}
    deadline = time.time() + timeout
    while time.time() < deadline and client.get_job_status(job_id) not in terminal:
        time.sleep(1)


def test_submitted_stage_job_writes_its_artifact(ray_head, tmp_path, data_root, tiny_model_dir):
    from ray.job_submission import JobStatus, JobSubmissionClient

    config = write_config(tmp_path / "job.yaml", tiny_config(tmp_path, data_root, tiny_model_dir))
    client = JobSubmissionClient(ray_head)
    job_id = client.submit_job(
        entrypoint=f"{sys.executable} jobs/pool.py --config {config}",
        runtime_env={"working_dir": str(REPO), "excludes": [".venv", ".git", "runs", "bench/results", "*.parquet"]},
    )
    _wait(client, job_id)
    logs = client.get_job_logs(job_id)
    assert client.get_job_status(job_id) == JobStatus.SUCCEEDED, logs[-3000:]
    assert "pool: done" in logs
    store = ArtifactStore(tmp_path / "run")
    assert store.manifest("pool").counts["rows"] == 24
    assert store.manifest("records") is None  # a stage job runs its stage only
