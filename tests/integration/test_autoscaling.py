"""Teacher labeling grows a GPU worker group from 0 nodes and gives it back, on Ray's fake multinode autoscaler.

`ray start --head --autoscaling-config` with provider `fake_multinode` runs the real autoscaler (monitor.py)
on this machine; it "launches" a node by starting another raylet here, with the node type's resources
(GPU: 1 is a logical resource: the transformers engine finds no CUDA and runs on CPU). The teacher actor
pool asks for `num_gpus_per_actor: 1`, the head has no GPU, so labeling can only run if the autoscaler
adds `gpu_teacher` nodes, and they must be removed again after `idle_timeout_minutes`.

We write the autoscaling config ourselves: `ray.cluster_utils.AutoscalingCluster` (Ray 2.60) reads
fake_multi_node/example.yaml, which the wheel does not ship, and runs `ray stop --force`, which would
kill every Ray on a shared machine.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import yaml
from helpers import free_port, labeling_stages, start_ray_head, stop_ray_by_temp_dir, tiny_config

from compeffdist.config import JobConfig
from compeffdist.pipeline import Runner

pytestmark = pytest.mark.integration
IDLE_TIMEOUT_MINUTES = 0.1  # 6 s
MAX_GPU_NODES = 2
OBJECT_STORE_BYTES = 100 * 1024 * 1024


def autoscaling_config(gcs_port: int) -> dict:
    """A fake-multinode cluster: a 1-CPU head without GPU and a `gpu_teacher` group from 0 to 2 nodes."""
    return {
        "cluster_name": "compeffdist-fake",
        "max_workers": MAX_GPU_NODES,
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": IDLE_TIMEOUT_MINUTES,
        "provider": {
            "type": "fake_multinode",
            "use_node_id_as_ip": True,
            "disable_node_updaters": True,
            "disable_launch_config_check": True,
            "gcs_address": f"127.0.0.1:{gcs_port}",
        },
        # FakeMultiNodeProvider tags its head node "ray.head.default"; the head type must have that name.
        "head_node_type": "ray.head.default",
        "available_node_types": {
            "ray.head.default": {"resources": {"CPU": 1}, "node_config": {}, "max_workers": 0},
            "gpu_teacher": {
                "resources": {"CPU": 1, "GPU": 1, "object_store_memory": OBJECT_STORE_BYTES},
                "node_config": {},
                "min_workers": 0,
                "max_workers": MAX_GPU_NODES,
            },
        },
        "auth": {},
        "docker": {},
        "file_mounts": {},
        "cluster_synced_files": [],
        "file_mounts_sync_continuously": False,
        "rsync_exclude": [],
        "rsync_filter": [],
        "initialization_commands": [],
        "setup_commands": [],
        "head_setup_commands": [],
        "worker_setup_commands": [],
        "head_start_ray_commands": [],
        "worker_start_ray_commands": [],
    }


@pytest.fixture
def autoscaling_head(tmp_path: Path):
    """A real head running the autoscaler with the fake multinode provider; yields its GCS address."""
    from ray.autoscaler._private.util import validate_config

    port = free_port()
    config = autoscaling_config(port)
    # The launcher's own schema, before Ray sees it (not prepare_config: its fake_multinode defaults file,
    # example.yaml, is the one missing from the wheel, hence every field is spelled out above).
    validate_config(config)
    config_path = tmp_path / "autoscaling.yaml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    temp_dir, error = start_ray_head(
        [f"--port={port}", "--num-cpus=1", "--num-gpus=0", f"--autoscaling-config={config_path}",
         "--include-dashboard=false", f"--object-store-memory={2 * OBJECT_STORE_BYTES}"],
        env={"RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1"},
    )  # fmt: skip
    if error:
        print(f"SKIP: the fake multinode autoscaler did not start: {error}")
        pytest.skip(f"the fake multinode autoscaler did not start: {error[-500:]}")
    try:
        yield f"127.0.0.1:{port}", Path(temp_dir)
    finally:
        import ray

        ray.shutdown()
        stop_ray_by_temp_dir(temp_dir)


class GpuNodeSampler(threading.Thread):
    """Records (seconds since start, alive nodes with a GPU) every `interval` seconds, plus named phase marks."""

    def __init__(self, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.started_at = time.time()
        self.samples: list[tuple[float, int]] = []
        self.marks: dict[str, float] = {}
        self._halt = threading.Event()

    def gpu_nodes(self) -> int:
        import ray

        return sum(1 for n in ray.nodes() if n["Alive"] and n["Resources"].get("GPU", 0) > 0)

    def run(self) -> None:
        while not self._halt.is_set():
            self.samples.append((round(time.time() - self.started_at, 2), self.gpu_nodes()))
            self._halt.wait(self.interval)

    def mark(self, name: str) -> None:
        self.marks[name] = round(time.time() - self.started_at, 2)

    def between(self, start: str, end: str | None = None) -> list[int]:
        stop = self.marks[end] if end else float("inf")
        return [n for t, n in self.samples if self.marks[start] <= t <= stop]

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)

    def changes(self) -> list[tuple[float, int]]:
        """The samples where the count changed (and the first one): the timeline in brief."""
        return [s for i, s in enumerate(self.samples) if i == 0 or s[1] != self.samples[i - 1][1]]


def test_teacher_labeling_scales_gpu_nodes_up_from_zero_and_back(autoscaling_head, tmp_path, data_root, tiny_model_dir):
    import ray

    address, temp_dir = autoscaling_head
    payload = tiny_config(
        tmp_path, data_root, tiny_model_dir,
        labeling={"records": 48, "sampling": {"temperature": 1.0, "max_tokens": 32}},
        engines={"teacher": {"max_model_len": 512, "resources": {
            "batch_size": 2, "min_actors": 1, "max_actors": MAX_GPU_NODES, "num_cpus_per_actor": 1,
            "num_gpus_per_actor": 1, "torch_threads": 1}}},
    )  # fmt: skip
    payload["ray"] = {"address": address}
    config = JobConfig.model_validate(payload)
    ray.init(address=address, log_to_driver=False)
    sampler = GpuNodeSampler()
    sampler.start()
    time.sleep(3)  # a few samples of the idle cluster
    sampler.mark("labeling_start")
    runner = Runner(config, labeling_stages())
    runner.run()
    sampler.mark("labeling_end")
    deadline = time.time() + 120
    while time.time() < deadline and sampler.gpu_nodes() > 0:
        time.sleep(0.5)
    time.sleep(2)
    sampler.mark("end")
    sampler.stop()

    timeline = {
        "idle_timeout_minutes": IDLE_TIMEOUT_MINUTES,
        "marks": sampler.marks,
        "changes": sampler.changes(),
        "samples": sampler.samples,
    }
    (tmp_path / "autoscaling_timeline.json").write_text(json.dumps(timeline, indent=1), encoding="utf-8")
    print(f"\nautoscaling timeline (t s, GPU nodes): marks={sampler.marks} changes={sampler.changes()}")
    print(f"timeline written to {tmp_path / 'autoscaling_timeline.json'}")

    before = [n for t, n in sampler.samples if t < sampler.marks["labeling_start"]]
    during = sampler.between("labeling_start", "labeling_end")
    assert before and max(before) == 0, f"GPU nodes before labeling: {before}"
    assert max(during) >= 1, f"no GPU node was added while labeling: {during}"
    assert max(during) <= MAX_GPU_NODES
    assert sampler.samples[-1][1] == 0, f"GPU nodes were not removed after the idle timeout: {sampler.changes()}"
    removed_at = next(t for t, n in reversed(sampler.changes()) if n == 0)
    print(f"GPU nodes back to 0 {removed_at - sampler.marks['labeling_end']:.1f} s after labeling ended")

    # The labeling itself ran to completion on the autoscaled nodes: every record labeled once.
    ids = runner.store.read_table("responses", columns=["record_id"]).column("record_id").to_pylist()
    expected = runner.store.read_table("records", columns=["record_id"]).column("record_id").to_pylist()
    assert len(ids) == len(set(ids)) == len(expected) == 48
    # The autoscaler (not the test) added and removed the nodes.
    monitor_log = next(temp_dir.glob("session_*/logs/monitor.log")).read_text(encoding="utf-8", errors="replace")
    assert "Adding" in monitor_log and "gpu_teacher" in monitor_log
