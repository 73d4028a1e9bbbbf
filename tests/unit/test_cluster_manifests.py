"""cluster/ manifests: Ray's own launcher schema, shared storage on every pod, GPU groups that fit the
paper configs, autoscaling from zero, and the RayJob's cluster equal to the RayCluster."""

from __future__ import annotations

import copy
import re
from pathlib import Path, PurePosixPath

import pytest
import ray
import yaml

from compeffdist.config import JobConfig, load_config
from compeffdist.redact import redact_text

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "cluster"
PAPER_CONFIGS = ["llama3-70b-to-3b.yaml", "qwen3-32b-to-4b.yaml", "gemma3-27b-to-4b.yaml"]
KUBERAY = ["kuberay-raycluster.yaml", "kuberay-rayjob.yaml"]
GPU = "nvidia.com/gpu"
IMAGE_ROOT = "/home/ray/compeffdist"


def _load(name: str) -> dict:
    return yaml.safe_load((REPO / "cluster" / name).read_text(encoding="utf-8"))


def _cluster_spec(doc: dict) -> dict:
    return doc["spec"] if doc["kind"] == "RayCluster" else doc["spec"]["rayClusterSpec"]


def _pods(spec: dict) -> dict[str, dict]:
    """Pod spec per group name (the head group is called "head")."""
    pods = {"head": spec["headGroupSpec"]["template"]["spec"]}
    pods.update({g["groupName"]: g["template"]["spec"] for g in spec["workerGroupSpecs"]})
    return pods


def _raw_config(name: str) -> dict:
    return yaml.safe_load((REPO / "configs" / name).read_text(encoding="utf-8"))


@pytest.fixture
def paper_config(request, data_root, monkeypatch) -> JobConfig:
    monkeypatch.setenv("COMPEFFDIST_DATA_ROOT", str(data_root))  # the cluster path does not exist here
    return load_config(REPO / "configs" / request.param)


def _shared_root() -> PurePosixPath:
    """The folder every paper config keeps its output_dir and data_root under (/mnt/cluster_storage)."""
    roots = set()
    for name in PAPER_CONFIGS:
        run = _raw_config(name)["run"]
        for key in ("output_dir", "data_root"):
            path = PurePosixPath(run[key])
            assert path.is_absolute(), f"{name}: run.{key} must be an absolute cluster path"
            roots.add(PurePosixPath(*path.parts[:3]))
    assert len(roots) == 1, roots
    return roots.pop()


# --- Ray cluster launcher (VMs) -------------------------------------------------------------------


def test_launcher_yaml_passes_rays_own_schema_and_defaults():
    from ray.autoscaler._private.util import prepare_config, validate_config

    cfg = _load("ray-cluster.yaml")
    prepared = prepare_config(copy.deepcopy(cfg))  # what `ray up` does: fill defaults, per-type min/max
    validate_config(prepared)  # jsonschema against ray/autoscaler/ray-schema.json, head type checks
    assert prepared["head_node_type"] in prepared["available_node_types"]
    types = prepared["available_node_types"]
    assert types[cfg["head_node_type"]]["resources"]["CPU"] == 0  # the head runs the driver only
    assert types["gpu_teacher"]["min_workers"] == 0  # scales from zero
    assert any(t["min_workers"] >= 1 and not t["resources"].get("GPU") for t in types.values())  # CPU work
    assert sum(t.get("max_workers", 0) for t in cfg["available_node_types"].values()) >= cfg["max_workers"]


def test_launcher_validation_rejects_a_misspelled_field():
    """Guards the test above: the schema really is strict."""
    from jsonschema import ValidationError
    from ray.autoscaler._private.util import prepare_config, validate_config

    cfg = _load("ray-cluster.yaml")
    cfg["available_node_types"]["gpu_teacher"]["resource"] = cfg["available_node_types"]["gpu_teacher"].pop("resources")
    with pytest.raises(ValidationError):
        validate_config(prepare_config(cfg))


def test_launcher_nodes_mount_the_shared_storage():
    root = str(_shared_root())
    cfg = _load("ray-cluster.yaml")
    commands = cfg["initialization_commands"]  # run on the head and every worker, on the host
    assert any("mount" in c and c.rstrip().endswith(root) for c in commands), commands
    assert f"--volume {root}:{root}" in cfg["docker"]["run_options"]  # and into the container Ray runs in


# --- KubeRay --------------------------------------------------------------------------------------


def test_rayjob_cluster_is_the_raycluster():
    assert _load("kuberay-rayjob.yaml")["spec"]["rayClusterSpec"] == _load("kuberay-raycluster.yaml")["spec"]


@pytest.mark.parametrize("name", KUBERAY)
def test_kuberay_manifests_autoscale_a_gpu_group_from_zero_next_to_a_cpu_group(name):
    doc = _load(name)
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] in {"RayCluster", "RayJob"}
    spec = _cluster_spec(doc)
    assert spec["rayVersion"] == ray.__version__
    assert spec["enableInTreeAutoscaling"] is True
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    limits = {n: g["template"]["spec"]["containers"][0]["resources"]["limits"] for n, g in groups.items()}
    assert groups["gpu-teacher"]["minReplicas"] == groups["gpu-teacher"]["replicas"] == 0
    for group_name, group in groups.items():
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        if GPU in limits[group_name]:
            tolerations = group["template"]["spec"].get("tolerations", [])
            assert {"key": GPU, "operator": "Exists", "effect": "NoSchedule"} in tolerations, group_name
    cpu_groups = [g for n, g in groups.items() if GPU not in limits[n]]
    assert cpu_groups and max(g["maxReplicas"] for g in cpu_groups) >= 1  # the head has num-cpus 0
    if doc["kind"] == "RayJob":  # the image holds jobs/ and configs/ under IMAGE_ROOT (cluster/Dockerfile)
        pipeline = f"python {IMAGE_ROOT}/jobs/pipeline.py --config {IMAGE_ROOT}/configs/"
        assert doc["spec"]["entrypoint"].startswith(pipeline)
        assert (REPO / doc["spec"]["entrypoint"].split(f"--config {IMAGE_ROOT}/")[1]).is_file()


@pytest.mark.parametrize("name", KUBERAY)
def test_every_kuberay_pod_mounts_the_shared_claim_where_the_configs_write(name):
    root = _shared_root()
    storage = _load("kuberay-storage.yaml")
    assert storage["kind"] == "PersistentVolumeClaim" and "ReadWriteMany" in storage["spec"]["accessModes"]
    for group, pod in _pods(_cluster_spec(_load(name))).items():
        claims = {
            v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v
        }
        for container in pod["containers"]:
            mounted = {m["mountPath"]: claims.get(m["name"]) for m in container.get("volumeMounts", [])}
            assert mounted.get(str(root)) == storage["metadata"]["name"], f"{name}: {group} does not mount {root}"
        for container in pod["containers"]:  # caches (HF_HOME, COMPEFFDIST_CACHE) live on the shared volume too
            env = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
            assert PurePosixPath(env["HF_HOME"]).is_relative_to(root), f"{name}: {group}"
            assert PurePosixPath(env["COMPEFFDIST_CACHE"]).is_relative_to(root), f"{name}: {group}"


# --- GPU groups against the three paper configs ---------------------------------------------------


def _gpu_groups() -> dict[str, dict[str, float]]:
    """Per manifest: the teacher GPU group's GPUs, CPUs and max nodes, and the cluster's total GPUs."""
    launcher = _load("ray-cluster.yaml")["available_node_types"]
    groups = {
        "ray-cluster.yaml": {
            "gpus": launcher["gpu_teacher"]["resources"]["GPU"],
            "cpus": launcher["gpu_teacher"]["resources"]["CPU"],
            "max_nodes": launcher["gpu_teacher"]["max_workers"],
            "total_gpus": sum(t["resources"].get("GPU", 0) * t.get("max_workers", 0) for t in launcher.values()),
        }
    }
    for name in KUBERAY:
        spec = _cluster_spec(_load(name))
        teacher = next(g for g in spec["workerGroupSpecs"] if g["groupName"] == "gpu-teacher")
        limits = teacher["template"]["spec"]["containers"][0]["resources"]["limits"]
        groups[name] = {
            "gpus": int(limits[GPU]),
            "cpus": float(limits["cpu"]),
            "max_nodes": teacher["maxReplicas"],
            "total_gpus": sum(
                int(g["template"]["spec"]["containers"][0]["resources"]["limits"].get(GPU, 0)) * g["maxReplicas"]
                for g in spec["workerGroupSpecs"]
            ),
        }
    return groups


@pytest.mark.parametrize("paper_config", PAPER_CONFIGS, indirect=True)
@pytest.mark.parametrize("manifest", ["ray-cluster.yaml", *KUBERAY])
def test_gpu_teacher_group_fits_the_paper_config(manifest, paper_config):
    group = _gpu_groups()[manifest]
    teacher = paper_config.engines.teacher.resources
    # vLLM tensor parallelism spans the GPUs of one actor, and one actor must fit on one node.
    assert teacher.num_gpus_per_actor == teacher.tensor_parallel_size
    assert group["gpus"] % teacher.num_gpus_per_actor == 0, "whole teacher replicas per node, no stranded GPUs"
    per_node = group["gpus"] // teacher.num_gpus_per_actor
    assert per_node * teacher.num_cpus_per_actor <= group["cpus"], "the node's CPUs cannot host its replicas"
    assert group["max_nodes"] * per_node >= teacher.max_actors, "the group cannot grow to engines.teacher.max_actors"
    for engine in (paper_config.engines.scorer.resources, paper_config.engines.evaluation.resources):
        if engine.num_gpus_per_actor:
            assert group["gpus"] % engine.num_gpus_per_actor == 0
            assert group["max_nodes"] * group["gpus"] >= engine.num_gpus_per_actor * engine.max_actors
    if paper_config.training.use_gpu:  # Ray Train: one GPU per worker
        assert group["total_gpus"] >= paper_config.training.num_workers


# --- Security: token authentication, nothing installed at start, no exposed dashboard, no secrets -----------------


def _ray_cluster_definitions() -> dict[str, dict]:
    """Every file in cluster/ that starts a Ray cluster (launcher YAML, RayCluster, RayJob)."""
    found = {}
    for path in sorted(CLUSTER.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        if "available_node_types" in doc or doc.get("kind") in {"RayCluster", "RayJob", "RayService"}:
            found[path.name] = doc
    return found


def test_every_ray_cluster_definition_turns_on_token_authentication():
    definitions = _ray_cluster_definitions()
    assert set(definitions) >= {"ray-cluster.yaml", *KUBERAY}
    for name, doc in definitions.items():
        if "available_node_types" in doc:  # launcher: every Ray process in the container reads the mode and token
            options = doc["docker"]["run_options"]
            assert "--env RAY_AUTH_MODE=token" in options, name
            token_path = next(o.split("=", 1)[1] for o in options if o.startswith("--env RAY_AUTH_TOKEN_PATH="))
            (host_file,) = [o.split()[1].split(":")[0] for o in options if o.endswith(f":{token_path}:ro")]
            # ... and the token file is written on each node from a secret store, never from this file
            writes = [c for c in doc["initialization_commands"] if host_file.replace("/home/ubuntu", "~") in c]
            assert writes and all("secretsmanager get-secret-value" in c and "umask 077" in c for c in writes), name
        else:
            auth = _cluster_spec(doc)["authOptions"]
            assert auth["mode"] == "token" and auth["secretName"], name


def test_no_cluster_definition_installs_packages_or_downloads_code_at_start():
    """The image holds everything; a name pip-installed at start runs whoever registered it on every node."""
    for path in sorted(CLUSTER.glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        assert "pip install" not in text and "pip:" not in text, path.name
    assert not _load("ray-cluster.yaml")["setup_commands"]
    job = _load("kuberay-rayjob.yaml")["spec"]
    assert "runtimeEnvYAML" not in job  # no working_dir URL, no pip: the entrypoint runs the image's code


def test_dashboard_is_reached_by_port_forward_only():
    head = " ".join(_load("ray-cluster.yaml")["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head  # `ray dashboard` forwards it over SSH
    for name in KUBERAY:
        spec = _cluster_spec(_load(name))["headGroupSpec"]
        assert spec.get("serviceType", "ClusterIP") == "ClusterIP" and not spec.get("enableIngress"), name
    docs = {p.name: p.read_text(encoding="utf-8") for p in [REPO / "README.md", *(REPO / "docs").glob("*.md")]}
    for name, text in docs.items():
        for address in re.findall(r"--address[ =](\S+)", text):
            assert address.startswith(("http://127.0.0.1:", "http://localhost:", "$")), f"{name}: {address}"


def test_no_credentials_in_cluster_files_or_runtime_envs_in_the_docs():
    for path in sorted(CLUSTER.iterdir()):
        text = path.read_text(encoding="utf-8")
        assert redact_text(text) == text, f"{path.name} holds something that looks like a credential"
    for path in [REPO / "README.md", *(REPO / "docs").glob("*.md")]:
        for runtime_env in re.findall(r"--runtime-env-json[ =]'([^']*)'", path.read_text(encoding="utf-8")):
            assert "TOKEN" not in runtime_env and "AWS_" not in runtime_env and "SECRET" not in runtime_env, path.name
