"""Fail fast on a cluster: before any stage runs, probe every node type the run will use.

A node type is a resource shape one actor or worker asks Ray for (its CPUs and GPUs) together with what runs in it:
the teacher's engine, the difficulty scorer, the evaluation engine, the embedding model, Ray Train workers. Roles of
the same shape share a node type. `check_nodes` runs one Ray task per node type with exactly that shape, so it lands
where the stage's actors will land (and makes an autoscaling group start a node, as the stage would). The task
imports every package and compeffdist module those stages import on that node and, where GPUs are asked for, checks
that torch sees them and runs a kernel, that vLLM selected its CUDA platform, and that NCCL and DeepSpeed's CUDA
accelerator are there for GPU training. A missing package or an invisible GPU then stops the run in seconds with a
named problem, instead of hours in, at the stage that first imports it.

The preflight calls `check_nodes(config, stage_names)` once before the first stage; it raises `NodeCheckError`
listing every problem. `probe` needs no Ray and runs anywhere (a GPU host without Ray, a container build).
"""

from __future__ import annotations

import importlib
import math
import os
import platform
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from compeffdist.config import JobConfig

# A GPU group that scales from zero needs minutes to boot a node and pull the image.
DEFAULT_TIMEOUT_S = 900.0
# A stage runs on a role's node type when its config sections include the role's section (or a field of it).
ROLE_SECTIONS = {
    "teacher": "engines.teacher",
    "scorer": "engines.scorer",
    "evaluation": "engines.evaluation",
    "embedding": "models.embedding",
    "trainer": "training",
}
# What the driver itself imports after the first stage started (attribute clustering, plots, reports).
DRIVER_MODULES = ("pyarrow", "sklearn", "matplotlib")


class NodeCheckError(RuntimeError):
    """One or more node types cannot run their stages; the message names each problem."""


@dataclass(frozen=True)
class NodeType:
    """One resource shape the run asks Ray for, and what its stages need there."""

    roles: tuple[str, ...]
    stages: tuple[str, ...]
    num_cpus: float
    num_gpus: float
    modules: tuple[str, ...]
    vllm_on_gpu: bool = False  # a vLLM engine runs here with GPUs: vLLM must pick its CUDA platform
    gpu_training: bool = False  # Ray Train workers on GPUs: NCCL (and DeepSpeed's CUDA accelerator) must be there

    def describe(self) -> str:
        return f"{'+'.join(self.roles)} node (CPU {self.num_cpus:g}, GPU {self.num_gpus:g}; {', '.join(self.stages)})"


@dataclass
class NodeReport:
    """What one probe found on the node it ran on."""

    node_type: NodeType
    host: str
    python: str
    versions: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def role_resources(config: JobConfig, role: str) -> tuple[float, float]:
    """(CPUs, GPUs) one actor or worker of `role` asks Ray for: the one place this module reads resource fields."""
    if role == "trainer":  # Ray Train's default per worker (ScalingConfig(use_gpu=...) in training/trainer.py)
        return 1.0, 1.0 if config.training.use_gpu else 0.0
    if role == "embedding":  # the embedding actor pool of instructions/embedding.py
        return 1.0, config.instructions.embedding_num_gpus
    resources = getattr(config.engines, role).resources  # for vLLM on GPUs = tensor x pipeline parallel size
    return resources.num_cpus_per_actor, resources.num_gpus_per_actor


def _role_needs(config: JobConfig, role: str, num_gpus: float) -> tuple[list[str], bool, bool]:
    """(modules to import, vLLM on GPU, GPU training) for one role."""
    if role == "trainer":
        training = config.training
        modules = ["torch", "transformers", "ray.train.torch", "deepspeed", "compeffdist.training.loop"]
        modules += ["peft"] if training.lora is not None else []
        return modules, False, training.use_gpu
    if role == "embedding":
        return ["torch", "sentence_transformers", "compeffdist.instructions.embedding"], False, False
    if role == "scorer":  # the scorer runs transformers directly, whatever engines.scorer.backend says
        return ["torch", "transformers", "compeffdist.difficulty.scorer", "compeffdist.rowmap"], False, False
    backend = getattr(config.engines, role).backend
    modules = ["torch", "transformers", f"compeffdist.engines.{backend}_engine"]
    if backend == "vllm":
        modules += ["vllm", "ray.serve"]  # vLLM's Ray wrappers import Ray Serve
    if role == "evaluation" or (role == "teacher" and "teacher" in config.evaluation.models):
        modules += ["sklearn", "compeffdist.evaluation.runner"]  # the teacher is evaluated on its own engine
    if role != "evaluation":  # instruction construction runs our GenerationWorker on any backend
        modules += ["compeffdist.generation.worker"]
    if role == "teacher" and backend == "vllm":  # labeling runs Ray's batch LLM stack
        modules += ["ray.data.llm", "compeffdist.generation.vllm_pipeline"]
    return modules, backend == "vllm" and num_gpus > 0, False


def node_types(config: JobConfig, stage_names: Iterable[str] | None = None) -> list[NodeType]:
    """The node types the given stages (default: all) will ask Ray for; roles of one shape are merged."""
    from compeffdist.pipeline import all_stages

    wanted = None if stage_names is None else set(stage_names)
    stages_of: dict[str, list[str]] = {}
    for stage in all_stages(config):
        if wanted is not None and stage.name not in wanted:
            continue
        for role, section in ROLE_SECTIONS.items():
            if any(s == section or s.startswith(section + ".") for s in stage.sections):
                stages_of.setdefault(role, []).append(stage.name)
    shapes: dict[tuple[float, float], dict] = {}
    for role, stages in stages_of.items():
        cpus, gpus = role_resources(config, role)
        modules, vllm_on_gpu, gpu_training = _role_needs(config, role, gpus)
        shape = shapes.setdefault(
            (cpus, gpus), {"roles": [], "stages": [], "modules": [], "vllm": False, "nccl": False}
        )
        shape["roles"].append(role)
        shape["stages"] += [s for s in stages if s not in shape["stages"]]
        shape["modules"] += [m for m in modules if m not in shape["modules"]]
        shape["vllm"] |= vllm_on_gpu
        shape["nccl"] |= gpu_training
    return [
        NodeType(
            tuple(s["roles"]), tuple(s["stages"]), cpus, gpus, tuple(s["modules"]), bool(s["vllm"]), bool(s["nccl"])
        )
        for (cpus, gpus), s in shapes.items()
    ]


def probe(node_type: NodeType) -> NodeReport:
    """Import what the node type needs and check its GPUs, here; problems are reported, never raised."""
    report = NodeReport(node_type, socket.gethostname(), platform.python_version())
    for name in node_type.modules:
        try:
            module = importlib.import_module(name)
        except Exception as error:  # not only ImportError: a CUDA-only torchvision raises RuntimeError on import
            report.problems.append(f"cannot import {name}: {type(error).__name__}: {error}")
            continue
        if "." not in name:
            report.versions[name] = str(getattr(module, "__version__", "?"))
    if node_type.num_gpus > 0 and "torch" in report.versions:
        report.problems += _gpu_problems(node_type, vllm_imported="vllm" in report.versions)
    return report


def _gpu_problems(node_type: NodeType, vllm_imported: bool) -> list[str]:
    import torch

    wanted = math.ceil(node_type.num_gpus)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>")
    if not torch.cuda.is_available():
        return [
            f"asks for {node_type.num_gpus:g} GPU(s) but torch {torch.__version__} (CUDA {torch.version.cuda}) "
            f"sees no CUDA device (CUDA_VISIBLE_DEVICES={visible!r}): no NVIDIA runtime or driver in the container?"
        ]
    if torch.cuda.device_count() < wanted:
        return [
            f"asks for {wanted} GPU(s) but torch sees {torch.cuda.device_count()} (CUDA_VISIBLE_DEVICES={visible!r})"
        ]
    problems = []
    try:  # is_available() can be True while the driver is too old for this CUDA build: run one kernel
        torch.ones(1, device="cuda").add_(1).item()
    except Exception as error:
        problems.append(f"a CUDA kernel failed on {torch.cuda.get_device_name(0)}: {type(error).__name__}: {error}")
    if node_type.vllm_on_gpu and vllm_imported:  # a failed import is already reported
        try:
            from vllm.platforms import current_platform

            if not current_platform.is_cuda():
                problems.append(f"vLLM selected the {type(current_platform).__name__} platform, not CUDA")
        except Exception as error:
            problems.append(f"vLLM cannot select a platform: {type(error).__name__}: {error}")
    if node_type.gpu_training:
        if not torch.distributed.is_nccl_available():
            problems.append("torch was built without NCCL: GPU training cannot start its process group")
        if "deepspeed" in node_type.modules:
            try:
                from deepspeed.accelerator import get_accelerator

                if get_accelerator().device_name() != "cuda":
                    problems.append(f"DeepSpeed chose the {get_accelerator().device_name()!r} accelerator, not cuda")
            except Exception as error:
                problems.append(f"DeepSpeed cannot choose an accelerator: {type(error).__name__}: {error}")
    return problems


def run_probes(types: list[NodeType], timeout_s: float = DEFAULT_TIMEOUT_S) -> list[NodeReport]:
    """One Ray task per node type, shaped like its actors; a node type no node came up for is a problem too."""
    import ray

    remote = ray.remote(probe)
    refs = {
        remote.options(num_cpus=t.num_cpus, num_gpus=t.num_gpus, max_retries=0, name="nodecheck").remote(t): t
        for t in types
    }
    done, pending = ray.wait(list(refs), num_returns=len(refs), timeout=timeout_s)
    reports = []
    for ref in done:
        try:
            reports.append(ray.get(ref))
        except Exception as error:  # the worker died while importing (a segfaulting CUDA library)
            reports.append(NodeReport(refs[ref], "?", "?", problems=[f"the probe task failed: {error}"]))
    for ref in pending:
        ray.cancel(ref, force=True)
        shape = f"{refs[ref].num_cpus:g} CPU and {refs[ref].num_gpus:g} GPU"
        unplaced = f"no node ran a task with {shape} within {timeout_s:g} s: no node type offers it, or none was added"
        reports.append(NodeReport(refs[ref], "-", "-", problems=[unplaced]))
    return reports


def check_nodes(
    config: JobConfig,
    stage_names: Iterable[str] | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    log: Callable[[str], None] | None = None,
) -> list[NodeReport]:
    """Probe the driver and every node type the stages use (Ray must be initialized); raise NodeCheckError if any
    cannot run its stages. `log` gets one line per node type."""
    types = node_types(config, stage_names)
    driver = probe(NodeType(("driver",), ("every stage",), 0, 0, DRIVER_MODULES))
    reports = [driver, *run_probes(types, timeout_s)]
    for report in reports:
        if log is not None:
            state = "ok" if not report.problems else f"{len(report.problems)} problem(s)"
            versions = ", ".join([f"Python {report.python}", *(f"{k} {v}" for k, v in report.versions.items())])
            log(f"node check: {report.node_type.describe()} on {report.host}: {state} ({versions})")
    problems = [f"- {r.node_type.describe()} on {r.host}: {p}" for r in reports for p in r.problems]
    if problems:
        raise NodeCheckError("node check failed:\n" + "\n".join(problems))
    return reports
