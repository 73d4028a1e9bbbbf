"""`ray job submit` against a real local head (dashboard + Job Submission API), as on a cluster.

Covers a one-stage job, a multi-stage labeling pipeline job, and a pipeline job stopped with
`ray job stop` mid-stage and resubmitted: the second job resumes from the first one's shards.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import dashboard_head, tiny_config, write_config

from compeffdist.artifacts import ArtifactStore

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
RUNTIME_ENV = {"working_dir": str(REPO), "excludes": [".venv", ".git", "runs", "bench/results", "*.parquet"]}
# The labeling chain (pool -> fixed templates -> records -> responses) through Runner, as a job entrypoint.
LABELING_JOB = "tests/integration/labeling_job.py"


@pytest.fixture(scope="module")
def ray_head() -> Iterator[str]:
    """A real `ray start --head` with the dashboard (which serves the Job Submission API)."""
    with dashboard_head() as (_, dashboard):
        yield dashboard


def _wait(client, job_id: str, statuses: set | None = None, timeout: float = 300) -> str:
    """Poll until the job reaches one of `statuses` (default: any terminal one); stop it on timeout."""
    from ray.job_submission import JobStatus

    wanted = statuses or {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = client.get_job_status(job_id)
        if status in wanted:
            return status
        time.sleep(0.5)
    client.stop_job(job_id)  # never leave a driver behind on this shared machine
    raise AssertionError(f"job {job_id} still {client.get_job_status(job_id)} after {timeout}s")


def _submit(client, entrypoint: str, timeout: float = 60) -> str:
    """Submit a job; right after `ray start` the head's job agent may not be up yet ("No available agent")."""
    deadline = time.time() + timeout
    while True:
        try:
            return client.submit_job(entrypoint=entrypoint, runtime_env=RUNTIME_ENV)
        except RuntimeError as error:
            if "No available agent" not in str(error) or time.time() > deadline:
                raise
            time.sleep(1)


def _ids(store: ArtifactStore, stage: str) -> list[str]:
    return store.read_table(stage, columns=["record_id"]).column("record_id").to_pylist()


def test_submitted_stage_job_writes_its_artifact(ray_head, tmp_path, data_root, tiny_model_dir):
    from ray.job_submission import JobStatus, JobSubmissionClient

    config = write_config(tmp_path / "job.yaml", tiny_config(tmp_path, data_root, tiny_model_dir))
    client = JobSubmissionClient(ray_head)
    job_id = _submit(client, f"{sys.executable} jobs/stage.py --stage pool --config {config}")
    status = _wait(client, job_id)
    logs = client.get_job_logs(job_id)
    assert status == JobStatus.SUCCEEDED, logs[-3000:]
    assert "pool: done" in logs
    store = ArtifactStore(tmp_path / "run")
    assert store.manifest("pool").counts["rows"] == 24
    assert store.manifest("records") is None  # a stage job runs its stage only


def test_submitted_pipeline_job_runs_pool_to_responses(ray_head, tmp_path, data_root, tiny_model_dir):
    from ray.job_submission import JobStatus, JobSubmissionClient

    config = write_config(tmp_path / "job.yaml", tiny_config(tmp_path, data_root, tiny_model_dir))
    client = JobSubmissionClient(ray_head)
    job_id = _submit(client, f"{sys.executable} {LABELING_JOB} {config}")
    status = _wait(client, job_id)
    logs = client.get_job_logs(job_id)
    assert status == JobStatus.SUCCEEDED, logs[-3000:]
    for stage in ("pool", "templates", "records", "responses"):
        assert f"{stage}: done" in logs, stage
    store = ArtifactStore(tmp_path / "run")
    assert store.manifest("pool").counts["rows"] == 24
    records, responses = _ids(store, "records"), _ids(store, "responses")
    assert len(records) == len(set(records)) == 16
    assert sorted(responses) == sorted(records)
    assert store.manifest("responses").token_usage[str(tiny_model_dir)]["requests"] == 16


def test_stopped_pipeline_job_resumes_from_its_shards_when_resubmitted(ray_head, tmp_path, data_root, tiny_model_dir):
    from ray.job_submission import JobStatus, JobSubmissionClient

    records = 72  # of 48 texts x 2 fixed templates: enough 2-row batches that a stop lands mid-stage
    payload = tiny_config(
        tmp_path, data_root, tiny_model_dir,
        pool={"texts_per_dataset": 24},
        labeling={"records": records, "sampling": {"temperature": 1.0, "max_tokens": 48}},
        engines={"teacher": {"max_model_len": 512,
                             "resources": {"batch_size": 2, "max_actors": 1, "torch_threads": 1}}},
    )  # fmt: skip
    config = write_config(tmp_path / "job.yaml", payload)
    shards = tmp_path / "run" / "_work" / "responses" / "shards"
    client = JobSubmissionClient(ray_head)
    entrypoint = f"{sys.executable} {LABELING_JOB} {config}"

    first = _submit(client, entrypoint)
    deadline = time.time() + 240
    while time.time() < deadline and len(list(shards.glob("*.parquet"))) < 2:
        status = client.get_job_status(first)
        assert status in {JobStatus.PENDING, JobStatus.RUNNING}, f"{status}: {client.get_job_logs(first)[-3000:]}"
        time.sleep(0.1)
    seen = len(list(shards.glob("*.parquet")))
    assert seen >= 2, client.get_job_logs(first)[-3000:]
    assert client.stop_job(first)
    assert _wait(client, first, timeout=120) == JobStatus.STOPPED, client.get_job_logs(first)[-3000:]
    assert not (tmp_path / "run" / "responses" / "manifest.json").exists()  # really stopped mid-stage
    kept = len(list(shards.glob("*.parquet")))
    assert kept >= seen

    second = _submit(client, entrypoint)
    status = _wait(client, second)
    logs = client.get_job_logs(second)
    assert status == JobStatus.SUCCEEDED, logs[-3000:]
    assert "resuming:" in logs and "already in shards" in logs, logs[-3000:]
    resumed = int(logs.split("resuming: ")[1].split(" of ")[0])
    print(f"\nstopped with {kept} shards written; the resubmitted job resumed {resumed} of {records} rows")
    assert kept <= resumed < records  # every kept shard (>= 1 row each) was reused, and work remained
    for stage in ("pool", "templates", "records"):
        assert f"{stage}: up to date, skipped" in logs  # finished stages are not redone

    store = ArtifactStore(tmp_path / "run")
    ids, expected = _ids(store, "responses"), _ids(store, "records")
    assert len(ids) == len(set(ids)) == records
    assert set(ids) == set(expected)
    assert store.manifest("responses").counts["resumed"] == resumed
    assert not shards.exists()
