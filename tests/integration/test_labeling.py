"""The labeling chain on a real local Ray: records, teacher responses, and resume after a kill."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import labeling_stages, tiny_config, write_config

from compeffdist.config import JobConfig
from compeffdist.pipeline import Runner

pytestmark = pytest.mark.integration
HERE = Path(__file__).resolve().parent


def test_labeling_chain_writes_every_record_once_and_skips_when_done(
    tmp_path, data_root, tiny_model_dir, ray_local, capfd
):
    config = JobConfig.model_validate(tiny_config(tmp_path, data_root, tiny_model_dir))
    runner = Runner(config, labeling_stages())
    runner.run()
    records = runner.store.read_table("records")
    # Records are published as several files (one Ray Data block per file), so teacher progress
    # streams while the stage runs instead of arriving all at once at the end.
    assert len(runner.store.parts("records")) == 4  # 16 records, batches of 4
    first_progress = next(line for line in capfd.readouterr().err.splitlines() if "rows/s" in line)
    assert "teacher: 4/16 rows" in first_progress, first_progress
    responses = runner.store.read_table("responses")
    assert records.num_rows == 16
    assert sorted(responses.column("record_id").to_pylist()) == sorted(records.column("record_id").to_pylist())
    assert set(records.column("kind").to_pylist()) == {"analysis", "classification"}
    manifest = runner.store.manifest("responses")
    usage = manifest.token_usage[str(tiny_model_dir)]
    assert usage["requests"] == 16 and usage["output_tokens"] > 0 and usage["prompt_tokens"] > 0
    assert manifest.counts["failed"] == manifest.counts["rejects"]
    assert set(responses.column("attempts").to_pylist()) <= {1, 2, 3}
    assert manifest.extra["actor_seconds"] > 0
    # Task prompts show the template's demos before the user text.
    task = next(r for r in records.to_pylist() if r["kind"] == "classification")
    assert task["instruction"].count("Input:") == task["demos_shown"] + 1

    # A second run skips everything; changing the teacher's sampling makes only `responses` stale.
    states = {s.stage: s.state for s in Runner(config, labeling_stages()).run()}
    assert set(states.values()) == {"done"}
    config.labeling.sampling.max_tokens = 4
    fresh = Runner(config, labeling_stages())
    assert {s.name: fresh.state(s).state for s in fresh.stages} == {
        "pool": "done", "templates": "done", "records": "done", "responses": "stale"
    }  # fmt: skip


def test_killed_run_resumes_on_a_resized_pool_without_losing_or_duplicating_rows(tmp_path, data_root, tiny_model_dir):
    """Killed half-way, then resumed with a bigger pool and batches: resources are not identity, shards stay."""
    payload = tiny_config(
        tmp_path, data_root, tiny_model_dir,
        labeling={"records": 40, "sampling": {"temperature": 1.0, "max_tokens": 48}},
        engines={"teacher": {"max_model_len": 512, "resources": {"batch_size": 2, "max_actors": 1}}},
    )  # fmt: skip
    config_path = write_config(tmp_path / "job.yaml", payload)
    shards = Path(payload["run"]["output_dir"]) / "_work" / "responses" / "shards"
    # This checkout first (not whichever compeffdist is installed), then tests/ for the helpers.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parents[1]), str(HERE.parent)])}
    first = subprocess.Popen(
        [sys.executable, str(HERE / "labeling_job.py"), str(config_path)],
        env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.time() + 240
    while time.time() < deadline and len(list(shards.glob("*.parquet"))) < 2 and first.poll() is None:
        time.sleep(0.05)
    assert first.poll() is None, f"the run ended before it could be killed:\n{first.stderr.read()[-3000:]}"
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    kept = len(list(shards.glob("*.parquet")))
    assert kept >= 2
    # After the kill, status shows the half-done stage from its shards, and the dead run's lease.
    status = subprocess.run(
        [sys.executable, "-m", "compeffdist.cli", "status", str(config_path)], env=env, capture_output=True, text=True
    )
    assert "output held by a dead run" in status.stdout, status.stdout + status.stderr
    responses_line = next(line for line in status.stdout.splitlines() if line.startswith("responses "))
    progress = re.search(r"partial: (\d+) of 40 rows \(the next run resumes\)", responses_line)
    assert progress and int(progress.group(1)) >= 2 * kept - 1, status.stdout  # a killed actor may finish a batch

    # Grow the pool and change batching, threads and retries half-way: the finished shards must stay.
    payload["engines"]["teacher"]["resources"] = {
        "batch_size": 4, "min_actors": 1, "max_actors": 2, "torch_threads": 1, "max_retries": 0
    }  # fmt: skip
    resized = write_config(tmp_path / "resized.yaml", payload)
    second = subprocess.run(
        [sys.executable, str(HERE / "labeling_job.py"), str(resized)],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming:" in second.stderr and "already in shards" in second.stderr
    assert "discarding" not in second.stderr
    assert "taking over" in second.stderr and "its process" in second.stderr  # the dead run's lease
    resumed = int(second.stderr.split("resuming: ")[1].split(" of ")[0])
    assert resumed >= 2 * kept - 1  # every finished shard (2 rows each) was kept, not redone

    config = JobConfig.model_validate(payload)
    store = Runner(config, labeling_stages()).store
    ids = store.read_table("responses").column("record_id").to_pylist()
    expected = store.read_table("records").column("record_id").to_pylist()
    assert len(ids) == len(set(ids)) == 40
    assert set(ids) == set(expected)
    assert not shards.exists()  # the work folder is cleaned once the artifact is published
