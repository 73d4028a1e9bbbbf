"""The node check on a real local Ray: one task per node type, shaped like its actors, names what is missing.

The local Ray gets a logical GPU (`num_gpus=1`) on a machine without CUDA, as a container started without the NVIDIA
runtime would be: Ray schedules the GPU task there and sets CUDA_VISIBLE_DEVICES, and the probe must say that torch
sees no device. The CUDA-positive path (torch kernel, NCCL, DeepSpeed's accelerator) ran on an H100: docs/cluster.md.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from compeffdist.config import load_config
from compeffdist.nodecheck import NodeCheckError, NodeType, check_nodes, run_probes

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ray_with_a_logical_gpu():
    import ray

    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_local_config_passes_with_one_probe_and_reports_versions(ray_with_a_logical_gpu, data_root, monkeypatch):
    monkeypatch.setenv("COMPEFFDIST_DATA_ROOT", str(data_root))
    lines: list[str] = []
    started = time.time()
    reports = check_nodes(load_config(REPO / "configs" / "local.yaml"), log=lines.append, timeout_s=300)
    print(f"node check of configs/local.yaml: {time.time() - started:.1f} s")
    assert [r.node_type.roles[0] for r in reports] == ["driver", "teacher"]  # one CPU node type for every role
    assert all(not r.problems for r in reports)
    assert {"torch", "transformers", "deepspeed", "sentence_transformers"} <= set(reports[1].versions)
    assert len(lines) == 2 and lines[1].startswith("node check: teacher+embedding+scorer+trainer+evaluation node")


def test_missing_package_invisible_gpu_and_unplaceable_shape_are_each_named(ray_with_a_logical_gpu):
    types = [
        NodeType(("trainer",), ("training",), 1, 0, ("torch", "compeffdist_absent_package")),
        NodeType(("teacher",), ("responses",), 1, 1, ("torch",)),
        NodeType(("scorer",), ("difficulty",), 1, 4, ("torch",)),  # more GPUs than any node has
    ]
    started = time.time()
    reports = {r.node_type.roles[0]: r for r in run_probes(types, timeout_s=20)}
    assert time.time() - started < 60
    assert reports["trainer"].problems == [
        "cannot import compeffdist_absent_package: ModuleNotFoundError: No module named 'compeffdist_absent_package'"
    ]
    (gpu_problem,) = reports["teacher"].problems
    assert "sees no CUDA device (CUDA_VISIBLE_DEVICES='0')" in gpu_problem  # Ray gave the task GPU 0
    assert reports["scorer"].problems == [
        "no node ran a task with 1 CPU and 4 GPU within 20 s: no node type offers it, or none was added"
    ]


def test_check_nodes_raises_naming_every_node_type_and_problem(ray_with_a_logical_gpu, data_root, monkeypatch):
    monkeypatch.setenv("COMPEFFDIST_DATA_ROOT", str(data_root))
    config = load_config(REPO / "configs" / "local.yaml", {"engines.scorer.resources.num_gpus_per_actor": 1})
    with pytest.raises(NodeCheckError) as info:
        check_nodes(config, ["difficulty", "selection"], timeout_s=120)
    message = str(info.value)
    assert message.startswith("node check failed:\n- scorer node (CPU 1, GPU 1; difficulty) on ")
    assert "asks for 1 GPU(s) but torch" in message
