"""A teacher actor SIGKILLed mid-stage: Ray restarts it, retries its batch, and the same run still labels
every record exactly once (Ray Data's actor-pool default is max_restarts=-1, max_task_retries=-1; this
test fails if that changes; shards make retries idempotent).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import dashboard_head, labeling_stages, tiny_config

from compeffdist.config import JobConfig
from compeffdist.pipeline import Runner

pytestmark = pytest.mark.integration
RECORDS = 40
BATCH = 2
# Ray Data names the actors of map_batches(ShardingMap, compute=ActorPoolStrategy) like this.
ACTOR_CLASS = "MapWorker(MapBatches(ShardingMap))"


@pytest.fixture(scope="module")
def ray_with_state_api() -> Iterator[str]:
    """A 2-CPU head with the dashboard (it serves ray.util.state's list_actors), joined by this process.

    `ray start` rather than ray.init(): it lets every port be a free one (another Ray on this machine may
    hold the dashboard agent's default port, and ray.init() cannot move it).
    """
    import ray

    with dashboard_head() as (address, dashboard):
        ray.init(address=address, log_to_driver=False)
        try:
            yield dashboard  # state API calls name it: other Rays run on this machine
        finally:
            ray.shutdown()


class ActorKiller(threading.Thread):
    """Waits until `min_shards` shards exist, then SIGKILLs the live labeling actor's worker process."""

    def __init__(self, dashboard: str, shard_dir: Path, min_shards: int, timeout: float = 240) -> None:
        super().__init__(daemon=True)
        self.dashboard, self.shard_dir, self.min_shards, self.timeout = dashboard, shard_dir, min_shards, timeout
        self.killed: dict | None = None
        self.error: str | None = None

    def run(self) -> None:
        try:
            self._wait_and_kill()
        except Exception as error:  # reported by the test, not lost in the thread
            self.error = f"{type(error).__name__}: {error}"

    def _wait_and_kill(self) -> None:
        from ray.util.state import list_actors

        deadline = time.time() + self.timeout
        while time.time() < deadline and len(list(self.shard_dir.glob("*.parquet"))) < self.min_shards:
            time.sleep(0.05)
        alive = list_actors(address=self.dashboard, filters=[("state", "=", "ALIVE")])
        actors = [a for a in alive if "ShardingMap" in a.class_name]
        if len(actors) != 1 or not actors[0].pid:
            self.error = f"expected one live labeling actor, found {[(a.class_name, a.pid) for a in actors]}"
            return
        shards = len(list(self.shard_dir.glob("*.parquet")))
        os.kill(actors[0].pid, signal.SIGKILL)
        self.killed = {"actor_id": actors[0].actor_id, "class_name": actors[0].class_name, "pid": actors[0].pid,
                       "shards_at_kill": shards}  # fmt: skip


def test_sigkilled_teacher_actor_is_restarted_and_the_run_labels_every_record_once(
    ray_with_state_api, tmp_path, data_root, tiny_model_dir
):
    from ray.util.state import list_actors

    payload = tiny_config(
        tmp_path, data_root, tiny_model_dir,
        labeling={"records": RECORDS, "sampling": {"temperature": 1.0, "max_tokens": 48}},
        engines={"teacher": {"max_model_len": 512,
                             "resources": {"batch_size": BATCH, "min_actors": 1, "max_actors": 1, "torch_threads": 1}}},
    )  # fmt: skip
    config = JobConfig.model_validate(payload)
    shard_dir = Path(payload["run"]["output_dir"]) / "_work" / "responses" / "shards"
    killer = ActorKiller(ray_with_state_api, shard_dir, min_shards=2)
    killer.start()
    runner = Runner(config, labeling_stages())
    runner.run()  # one run, no resubmission: the kill is absorbed inside the stage
    killer.join(timeout=10)
    assert killer.error is None, killer.error
    assert killer.killed is not None, "the labeling actor was never killed"
    print(f"\nkilled {killer.killed}")

    # The kill landed mid-stage, and the process is really gone.
    assert killer.killed["class_name"] == ACTOR_CLASS
    assert 2 <= killer.killed["shards_at_kill"] < RECORDS // BATCH
    with pytest.raises(ProcessLookupError):
        os.kill(killer.killed["pid"], 0)
    # Ray restarted that same actor (not a new pool member) and retried its batch.
    (actor,) = list_actors(
        address=ray_with_state_api, filters=[("actor_id", "=", killer.killed["actor_id"])], detail=True
    )
    assert actor.num_restarts >= 1, actor

    responses = runner.store.read_table("responses")
    ids = responses.column("record_id").to_pylist()
    expected = runner.store.read_table("records", columns=["record_id"]).column("record_id").to_pylist()
    assert len(ids) == len(set(ids)) == RECORDS
    assert set(ids) == set(expected)
    errors = [e for e in responses.column("error").to_pylist() if e]
    assert errors == [], errors
    assert runner.store.manifest("responses").counts["failed"] == 0
    assert not shard_dir.exists()
