"""What makes a stage stale: the identity of its config sections, never the resources that serve it."""

from __future__ import annotations

import pytest

from compeffdist.config import ConfigError, JobConfig, load_config
from compeffdist.labeling import STAGES as LABELING

pytestmark = pytest.mark.unit

RESPONSES = next(s for s in LABELING if s.name == "responses")


def _config(data_root, **sections) -> JobConfig:
    payload = {
        "run": {"data_root": str(data_root)},
        "models": {"teacher": {"name": "t"}, "student": {"name": "s"}},
        **sections,
    }
    return JobConfig.model_validate(payload)


@pytest.mark.parametrize(
    "resources",
    [
        {"min_actors": 2, "max_actors": 16},
        {"batch_size": 128},
        {"num_cpus_per_actor": 4, "num_gpus_per_actor": 1},
        {"tensor_parallel_size": 8, "pipeline_parallel_size": 2},
        {"max_retries": 5, "torch_threads": 3, "max_concurrent_batches": 8},
        {"vllm_engine_kwargs": {"gpu_memory_utilization": 0.8}},
    ],
)
def test_resource_knobs_never_change_a_stage_hash(data_root, resources):
    before = _config(data_root)
    after = _config(data_root, engines={"teacher": {"resources": resources}})
    assert after.section_hash(RESPONSES.sections) == before.section_hash(RESPONSES.sections)


@pytest.mark.parametrize(
    "change",
    [
        {"models": {"teacher": {"name": "other"}, "student": {"name": "s"}}},
        {"labeling": {"sampling": {"temperature": 0.7}}},
        {"engines": {"teacher": {"backend": "vllm"}}},
        {"engines": {"teacher": {"max_model_len": 4096}}},
    ],
)
def test_what_changes_outputs_still_changes_the_hash(data_root, change):
    before = _config(data_root)
    after = _config(data_root, **change)
    assert after.section_hash(RESPONSES.sections) != before.section_hash(RESPONSES.sections)


def test_exact_either_way_scoring_knobs_are_not_identity(data_root):
    sections = ("difficulty",)
    before = _config(data_root)
    after = _config(data_root, difficulty={"position_chunk": 7, "partial_sort_k": 0, "rows_per_task": 5})
    assert after.section_hash(sections) == before.section_hash(sections)
    assert _config(data_root, difficulty={"top_p": 0.9}).section_hash(sections) != before.section_hash(sections)


def test_resources_at_the_old_place_say_where_they_moved(tmp_path, data_root):
    path = tmp_path / "old.yaml"
    path.write_text(
        f"run: {{data_root: {data_root}}}\nmodels: {{teacher: {{name: t}}, student: {{name: s}}}}\n"
        "engines: {teacher: {backend: vllm, max_actors: 8}}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"engines\.teacher: max_actors moved under `resources:`"):
        load_config(path)
