"""The sharded actor-pool map on a real local Ray: input read from Parquet parts, every row once."""

from __future__ import annotations

import sys
import time

import pyarrow as pa
import pytest
import ray.cloudpickle
from helpers import tiny_config

from compeffdist.artifacts import ArtifactStore
from compeffdist.config import JobConfig, ResourceConfig
from compeffdist.rowmap import read_shards, run_sharded_map
from compeffdist.stage import Stage, StageContext, StageOutput
from compeffdist.storage import Location

pytestmark = pytest.mark.integration
# Ray workers cannot import this test module; ship the worker class by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


class CountingWorker:
    """Stands in for an engine worker: one output token per row."""

    def __call__(self, batch: pa.Table) -> pa.Table:
        return batch.append_column("output_tokens", pa.array([1] * batch.num_rows))


@pytest.mark.timeout(180)
def test_actor_pool_holding_every_cpu_still_reads_its_parquet_input(tmp_path, data_root, tiny_model_dir, ray_local):
    # One actor asks for both of the cluster's CPUs. Ray Data's read_parquet lists files in a task that
    # wants a whole CPU, so this hung forever before the parts were read by tasks that reserve none.
    config = JobConfig.model_validate(tiny_config(tmp_path, data_root, tiny_model_dir))
    ctx = StageContext(config, ArtifactStore(tmp_path / "run"), Stage("map", lambda ctx: StageOutput()), {"t": 1})
    ids = [f"r{i:03d}" for i in range(30)]
    parts = []
    for start in range(0, len(ids), 8):
        part = Location.of(tmp_path / "input" / f"part-{start:05d}.parquet")
        part.write_parquet(pa.table({"request_id": ids[start : start + 8]}))
        parts.append(part)
    total_cpus = int(ray_local.cluster_resources()["CPU"])
    pool = ResourceConfig(batch_size=4, num_cpus_per_actor=total_cpus, min_actors=1, max_actors=1)
    started = time.time()
    shard_dir, stats = run_sharded_map(ctx, parts, CountingWorker, {}, pool, "request_id", "map")
    assert sorted(read_shards(shard_dir, "request_id").column("request_id").to_pylist()) == ids
    assert stats.rows == len(ids) and stats.output_tokens == len(ids)
    print(f"map of {len(ids)} rows on one {total_cpus}-CPU actor: {time.time() - started:.1f}s", file=sys.stderr)
