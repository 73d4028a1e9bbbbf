"""Each evaluated model runs on the engine sized for it: the 70B teacher on its tensor-parallel GPUs."""

from pathlib import Path

from compeffdist.config import load_config
from compeffdist.evaluation.stages import engine_for, task_gpus

REPO = Path(__file__).resolve().parents[2]


def test_teacher_is_evaluated_on_the_teachers_engine_with_all_its_gpus(data_root, monkeypatch):
    monkeypatch.setenv("COMPEFFDIST_DATA_ROOT", str(data_root))  # the cluster path does not exist here
    config = load_config(REPO / "configs" / "llama3-70b-to-3b.yaml")
    teacher = engine_for(config, "teacher")
    assert (teacher.backend, teacher.max_model_len) == (
        config.engines.teacher.backend,
        config.engines.teacher.max_model_len,
    )
    assert teacher.resources.tensor_parallel_size == 4 and teacher.resources.vllm_engine_kwargs["enable_prefix_caching"]
    assert task_gpus(teacher) == 4  # tensor_parallel_size 4: one task holds the whole replica
    # Batch and CPUs are the evaluation engine's: one evaluation task at a time, unlike the labeling pool.
    assert teacher.resources.batch_size == config.engines.evaluation.resources.batch_size
    assert teacher.resources.num_cpus_per_actor == config.engines.evaluation.resources.num_cpus_per_actor
    for student in ("student", "base_student"):
        assert engine_for(config, student) == config.engines.evaluation
        assert task_gpus(engine_for(config, student)) == 1


def test_transformers_engine_holds_its_configured_gpus(data_root, monkeypatch):
    monkeypatch.setenv("COMPEFFDIST_DATA_ROOT", str(data_root))
    config = load_config(
        REPO / "configs" / "llama3-70b-to-3b.yaml",
        overrides={"engines.evaluation.backend": "transformers", "engines.evaluation.resources.num_gpus_per_actor": 2},
    )
    assert task_gpus(engine_for(config, "student")) == 2
