"""One writer per output through the runner: concurrent runs, and publishes fenced by the lease and work area."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest

from compeffdist.artifacts import ArtifactStore
from compeffdist.config import JobConfig
from compeffdist.lease import LEASE, LeaseLost
from compeffdist.pipeline import Runner
from compeffdist.stage import OWNER_FILE, Stage, StageContext, StageOutput

pytestmark = pytest.mark.unit
ROWS = 16

# A run of one stage that writes its rows as shards in its work area over ~2 s (as the teacher stage does),
# then publishes them: long enough for a second run to start while the first one works.
RUN_SCRIPT = """
import sys, time
import pyarrow as pa
from compeffdist.config import JobConfig
from compeffdist.lease import OutputBusy
from compeffdist.pipeline import Runner
from compeffdist.stage import Stage, StageOutput

def rows(ctx):
    shards = ctx.work / "shards"
    for start in range(0, 16, 4):
        time.sleep(0.5)
        (shards / f"{start:03d}.parquet").write_parquet(pa.table({"id": list(range(start, start + 4))}))
    return StageOutput(table=pa.concat_tables(s.read_parquet() for s in shards.list_files(".parquet")))

config = JobConfig.model_validate({
    "run": {"output_dir": sys.argv[1], "data_root": sys.argv[2], "lease": {"heartbeat_s": 0.2, "stale_after_beats": 5}},
    "models": {"teacher": {"name": "t"}, "student": {"name": "s"}},
})
try:
    Runner(config, [Stage(name="rows", run=rows)]).run()
except OutputBusy as exc:
    print(f"busy: {exc}", flush=True)
    sys.exit(3)
print("published", flush=True)
"""


def _config(tmp_path: Path) -> JobConfig:
    return JobConfig.model_validate(
        {
            "run": {"output_dir": str(tmp_path / "run"), "data_root": str(tmp_path)},
            "models": {"teacher": {"name": "t"}, "student": {"name": "s"}},
        }
    )


def test_two_concurrent_runs_one_is_refused_and_no_row_is_lost(tmp_path):
    output = tmp_path / "run"
    command = [sys.executable, "-c", RUN_SCRIPT, str(output), str(tmp_path)]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ})
    time.sleep(0.5)  # the report's case: the second run starts while the first is writing shards
    second = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ})
    second_out, _ = second.communicate(timeout=60)
    first_out, first_err = first.communicate(timeout=60)
    assert second.returncode == 3, second_out
    assert f"pid {first.pid}" in second_out and "is in use by run" in second_out
    assert first.returncode == 0 and "published" in first_out, first_err
    store = ArtifactStore(output)
    assert store.manifest("rows").counts["rows"] == ROWS
    assert sorted(store.read_table("rows").column("id").to_pylist()) == list(range(ROWS))
    assert not (output / LEASE).exists()  # released at the end


def _publish_once(config: JobConfig, run: callable) -> Runner:
    runner = Runner(config, [Stage(name="rows", run=run)])
    runner.run()
    return runner


def test_a_run_that_lost_its_lease_publishes_nothing(tmp_path):
    config = _config(tmp_path)
    runner = _publish_once(config, lambda ctx: StageOutput(table=pa.table({"id": list(range(ROWS))})))
    before = runner.store.manifest("rows")

    def taken_over_meanwhile(ctx: StageContext) -> StageOutput:
        lease_file = Path(config.run.output_dir) / LEASE
        record = json.loads(lease_file.read_text())
        lease_file.write_text(json.dumps({**record, "run_id": "newer-run", "pid": 1}))
        return StageOutput(table=pa.table({"id": [0]}))

    runner = Runner(config, [Stage(name="rows", run=taken_over_meanwhile)])
    with pytest.raises(LeaseLost, match="newer-run"):
        runner.run(force=["rows"])
    after = runner.store.manifest("rows")
    assert after.version == before.version and runner.store.read_table("rows").num_rows == ROWS


def test_a_work_area_claimed_by_another_run_is_not_published(tmp_path):
    config = _config(tmp_path)

    def claimed_meanwhile(ctx: StageContext) -> StageOutput:
        (ctx.work / OWNER_FILE).write_text(json.dumps({"run_id": "other-run"}))
        return StageOutput(table=pa.table({"id": [0]}))

    runner = Runner(config, [Stage(name="rows", run=claimed_meanwhile)])
    with pytest.raises(LeaseLost, match=r"work area .*rows now belongs to run other-run"):
        runner.run()
    assert runner.store.manifest("rows") is None


def test_each_published_stage_names_the_run_that_made_it(tmp_path):
    runner = _publish_once(_config(tmp_path), lambda ctx: StageOutput(table=pa.table({"id": [1]})))
    run_id = runner.store.manifest("rows").extra["run_id"]
    assert isinstance(run_id, str) and len(run_id) == 12
