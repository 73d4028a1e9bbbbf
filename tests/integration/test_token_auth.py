"""Ray token authentication as the cluster definitions turn it on: a head started with RAY_AUTH_MODE=token and a
token file (as cluster/ray-cluster.yaml's containers get it) refuses `ray job submit` without the token or with a
wrong one, and runs the job with it (the client side as docs/cluster.md tells users to submit).

Ray reads RAY_AUTH_MODE once per process and tests/conftest.py disables it for pytest, so the head and every client
run as subprocesses with their own environment. Only this test's head is stopped (never `ray stop`).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import free_port, start_ray_head, stop_ray_by_temp_dir

pytestmark = pytest.mark.integration
RAY = str(Path(sys.executable).with_name("ray"))
GREETING = "hello from an authenticated job"


def _submit(dashboard: str, client_env: dict[str, str]) -> subprocess.CompletedProcess:
    """`ray job submit` from a fresh process; retried while the head's job agent is still starting."""
    command = [RAY, "job", "submit", "--address", dashboard, "--", sys.executable, "-c", f"print({GREETING!r})"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")} | client_env
    deadline = time.time() + 60
    while True:
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
        if "No available agent" not in result.stdout + result.stderr or time.time() > deadline:
            return result
        time.sleep(1)


def test_job_submission_is_refused_without_the_token_and_accepted_with_it(tmp_path):
    token_file = tmp_path / "ray_auth_token"
    token_file.write_text(secrets.token_hex(32))
    token_file.chmod(0o600)
    port, dashboard_port = free_port(), free_port()
    temp_dir, error = start_ray_head(
        [f"--port={port}", "--num-cpus=1", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
         f"--dashboard-port={dashboard_port}"],
        env={"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_file)},
    )  # fmt: skip
    assert not error, f"the token-authenticated head did not start: {error}"
    dashboard = f"http://127.0.0.1:{dashboard_port}"
    try:
        anonymous = _submit(dashboard, {"RAY_AUTH_MODE": "disabled"})
        assert anonymous.returncode != 0
        assert "Authentication required" in anonymous.stdout + anonymous.stderr
        assert GREETING not in anonymous.stdout

        wrong = _submit(dashboard, {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)})
        assert wrong.returncode != 0 and "Invalid authentication token" in wrong.stdout + wrong.stderr

        accepted = _submit(dashboard, {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_file)})
        assert accepted.returncode == 0, accepted.stdout[-2000:] + accepted.stderr[-2000:]
        assert GREETING in accepted.stdout and "succeeded" in accepted.stdout
    finally:
        stop_ray_by_temp_dir(temp_dir)
