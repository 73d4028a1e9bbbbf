"""cluster/ manifests: required fields, autoscaling from zero, and agreement with the job configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import ray
import yaml

from compeffdist.config import load_config

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]


def _load(name: str) -> dict:
    return yaml.safe_load((REPO / "cluster" / name).read_text(encoding="utf-8"))


@pytest.fixture
def llama_teacher(data_root, monkeypatch):
    monkeypatch.setenv("COMPEFFDIST_DATA_ROOT", str(data_root))
    return load_config(REPO / "configs" / "llama3-70b-to-3b.yaml").engines.teacher


def test_launcher_yaml_has_a_gpu_teacher_group_from_zero(llama_teacher):
    cfg = _load("ray-cluster.yaml")
    for key in ("cluster_name", "max_workers", "provider", "available_node_types", "head_node_type"):
        assert key in cfg, key
    assert cfg["head_node_type"] in cfg["available_node_types"]
    teacher = cfg["available_node_types"]["gpu_teacher"]
    assert teacher["min_workers"] == 0
    assert teacher["resources"]["GPU"] == llama_teacher.num_gpus_per_actor == llama_teacher.tensor_parallel_size
    assert teacher["max_workers"] >= llama_teacher.max_actors
    assert sum(t.get("max_workers", 0) for t in cfg["available_node_types"].values()) >= cfg["max_workers"]


@pytest.mark.parametrize("name", ["kuberay-raycluster.yaml", "kuberay-rayjob.yaml"])
def test_kuberay_manifests_autoscale_the_teacher_group(name, llama_teacher):
    doc = _load(name)
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] in {"RayCluster", "RayJob"}
    spec = doc["spec"] if doc["kind"] == "RayCluster" else doc["spec"]["rayClusterSpec"]
    assert spec["rayVersion"] == ray.__version__
    assert spec["enableInTreeAutoscaling"] is True
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    teacher = groups["gpu-teacher"]
    assert teacher["minReplicas"] == 0 and teacher["maxReplicas"] >= llama_teacher.max_actors
    limits = teacher["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert int(limits["nvidia.com/gpu"]) == llama_teacher.num_gpus_per_actor
    if doc["kind"] == "RayJob":
        assert doc["spec"]["entrypoint"].startswith("python jobs/pipeline.py --config configs/")
        assert (REPO / doc["spec"]["entrypoint"].split("--config ")[1]).is_file()
