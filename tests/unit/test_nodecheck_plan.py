"""Which node types a run asks Ray for, and what each must import: derived from the stage graph and the config."""

from __future__ import annotations

from pathlib import Path

import pytest

from compeffdist.config import load_config
from compeffdist.nodecheck import NodeType, node_types, probe

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def load(data_root, monkeypatch):
    monkeypatch.setenv("COMPEFFDIST_DATA_ROOT", str(data_root))
    return lambda name, **overrides: load_config(REPO / "configs" / name, overrides)


def test_paper_config_has_one_node_type_per_resource_shape(load):
    types = {t.roles: t for t in node_types(load("llama3-70b-to-3b.yaml"))}
    assert set(types) == {("teacher",), ("embedding",), ("scorer", "evaluation"), ("trainer",)}
    teacher = types["teacher",]
    assert (teacher.num_cpus, teacher.num_gpus) == (8, 4) and teacher.vllm_on_gpu and "vllm" in teacher.modules
    # The teacher is evaluated on its own engine (4 GPUs), not on the 1-GPU evaluation engine.
    assert teacher.stages == (
        "attributes",
        "analysis_prompts",
        "task_ideas",
        "tasks",
        "demos",
        "responses",
        "evaluation",
    )
    assert "compeffdist.evaluation.runner" in teacher.modules
    shared = types["scorer", "evaluation"]  # engines.scorer and engines.evaluation ask for the same 4 CPU + 1 GPU
    assert shared.stages == ("difficulty", "evaluation") and {"sklearn", "compeffdist.difficulty.scorer"} <= set(
        shared.modules
    )
    trainer = types["trainer",]
    assert (trainer.num_cpus, trainer.num_gpus) == (1, 1) and trainer.gpu_training and "deepspeed" in trainer.modules
    assert "peft" not in trainer.modules  # full fine-tuning: no LoRA
    assert types["embedding",].modules[1] == "sentence_transformers" and types["embedding",].num_gpus == 0


def test_only_the_selected_stages_node_types_are_probed(load):
    config = load("llama3-70b-to-3b.yaml", **{"training.lora": {"r": 8}})
    assert [t.roles for t in node_types(config, ["selection"])] == []  # selection needs no actor at all
    (trainer,) = node_types(config, ["selection", "training"])
    assert "peft" in trainer.modules and "deepspeed" in trainer.modules  # every run trains on DeepSpeed


def test_local_config_merges_every_role_into_one_cpu_node_type(load):
    (local,) = node_types(load("local.yaml"))
    assert (local.num_cpus, local.num_gpus) == (1, 0) and not local.vllm_on_gpu and not local.gpu_training
    assert set(local.roles) == {"teacher", "embedding", "scorer", "trainer", "evaluation"}
    assert {"transformers", "sentence_transformers", "deepspeed", "compeffdist.engines.transformers_engine"} <= set(
        local.modules
    )


def test_probe_names_a_missing_package_and_an_invisible_gpu(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU visible, also on a machine that has one
    report = probe(NodeType(("teacher",), ("responses",), 1, 1, ("torch", "compeffdist_absent_package")))
    assert "torch" in report.versions
    assert report.problems[0] == (
        "cannot import compeffdist_absent_package: ModuleNotFoundError: No module named 'compeffdist_absent_package'"
    )
    gpu_problem = report.problems[1]
    assert "asks for 1 GPU(s)" in gpu_problem and "sees no CUDA device (CUDA_VISIBLE_DEVICES='')" in gpu_problem
