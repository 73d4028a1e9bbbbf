"""The teacher stages S4-S11 through the Runner with a scripted teacher engine (the real generation worker runs
in this process instead of on a Ray actor pool): what each answer turns into, what is dropped and under which
count, what is rejected, and the keep_unstandardized_tasks switch. (tests/integration/test_instructions.py
runs the same stages on Ray.)"""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from instr_scripted import ScriptedEngine, generate_in_process

from compeffdist.config import JobConfig
from compeffdist.generation.requests import GenerationRequest, GenerationResult
from compeffdist.instructions.ids import asked_of, template_id
from compeffdist.instructions.s3_perspectives import PERSPECTIVE_SCHEMA
from compeffdist.instructions.s11_templates import TEMPLATE_SCHEMA
from compeffdist.instructions.stages import STAGES
from compeffdist.pipeline import Runner
from compeffdist.stage import Stage, StageContext, StageOutput

pytestmark = pytest.mark.unit

IDEAS = {
    "tasks": [
        {"task_name": "Tone label", "task_type": "classification",
         "task_description": "Label the tone of the text as positive or negative."},
        {"task_name": "Tone label", "task_type": "classification",
         "task_description": "Label the tone of the text as positive or negative!"},  # near-duplicate
        {"task_name": "Compare", "task_type": "classification",
         "task_description": "Which of text 1 and text 2 is angrier?"},  # two texts
        {"task_name": "Tone rating", "task_type": "rating", "task_description": "Rate the tone from 1 to 5."},
        {"task_name": "Triggers", "task_type": "extraction",
         "task_description": "Extract the words that set the tone."},  # over tasks_per_cluster
        {"task_name": ""},  # invalid item
    ]
}  # fmt: skip
STANDARDIZED = {
    "task_name": "Tone label",
    "task_type": "classification",
    "task_description": "Label the tone of the text as positive or negative. Answer with the label only.",
    "examples": [
        {"input": "Lovely staff.", "output": "positive"},
        {"input": "Rude waiter.", "output": "negative"},
        {"input": "Great views.", "output": "positive"},
        {"input": "no output"},  # invalid example
    ],
}
ANALYSIS = """1. Please classify the overall tone of this text as one of ["positive", "negative", "neutral"].
2. Which words in this text carry the strongest emotion?
   - list them in order
3. How does the writer's attitude change from start to end?"""
ANSWERS = {
    "analysis-c0": ANALYSIS,
    "task1-c0": json.dumps(IDEAS),
    "task2-c0-t0": json.dumps(STANDARDIZED),
    "task2-c0-t1": "I cannot do that.",
    # A JSON Output must stay one output, not be read as the list of pairs.
    "demo-c0-t0-d0": 'Input: The pasta was cold.\nOutput: [{"span": "cold", "label": "negative"}]\n\n'
    "Input: Friendly, quick service.\nOutput: positive",
    "demo-c0-t0-d1": "Input: Like the reference text, great.\nOutput: positive\n\n"
    "Input: the pasta was cold\nOutput: negative\n\nInput: A third pair.\nOutput: positive",
}


def scripted_answer(request: GenerationRequest) -> GenerationResult:
    """Fixed answers by request id (re-asks get the same answer); anything else is noise."""
    return GenerationResult(request.request_id, ANSWERS.get(asked_of(request.request_id), "noise"), 10, 5, "stop")


def _pool(ctx: StageContext) -> StageOutput:
    texts = ["The soup was cold.", "Great service!", "Meh.", "I will come back."]
    return StageOutput(table=pa.table({"text_id": [f"t{i}" for i in range(4)], "domain": ["yelp"] * 4, "text": texts}))


def _perspectives(ctx: StageContext) -> StageOutput:
    rows = [
        {"attribute_id": f"a{i}", "attribute": name, "count": 20 - i, "variants": [], "description": f"the {name}",
         "top_descriptions": [], "cluster_id": 0, "rank_in_cluster": i}
        for i, name in enumerate(["tone", "attitude"])
    ]  # fmt: skip
    return StageOutput(table=pa.Table.from_pylist(rows, schema=PERSPECTIVE_SCHEMA))


def _run(tmp_path, monkeypatch, **instructions) -> Runner:
    maps = generate_in_process(monkeypatch, ScriptedEngine(scripted_answer))
    config = JobConfig.model_validate(
        {
            "run": {"output_dir": str(tmp_path / "run"), "data_root": str(tmp_path)},
            "models": {"teacher": {"name": "scripted"}, "student": {"name": "scripted"}},
            "instructions": {
                "generation_sampling": {"temperature": 0.7, "max_tokens": 64},
                "tasks_per_cluster": 2,
                "seed_demos_per_task": 3,
                "demo_requests_per_task": 2,
                "analysis_prompts_per_cluster": 5,
                **instructions,
            },
        }
    )
    stages = [
        Stage(name="pool", run=_pool),
        Stage(name="perspectives", run=_perspectives, inputs=("pool",)),
        *[s for s in STAGES if s.name not in {"attributes", "perspectives"}],
    ]
    runner = Runner(config, stages)
    runner.run()
    # One teacher pool per teacher stage (analysis_prompts, task_ideas, tasks, demos), re-asks included.
    assert maps.maps == 4
    return runner


def test_stages_turn_answers_into_templates_and_count_every_drop(tmp_path, monkeypatch):
    runner = _run(tmp_path, monkeypatch)
    store = runner.store

    prompts = store.read_table("analysis_prompts").to_pylist()
    assert [p["prompt"] for p in prompts] == [
        'Please classify the overall tone of this text as one of ["positive", "negative", "neutral"].',
        "Which words in this text carry the strongest emotion?",
        "How does the writer's attitude change from start to end?",
    ]  # a list, despite the JSON list inside its first prompt; sub-bullets are not prompts

    # S6 (task_ideas) and S7-S8 (tasks) are two stages, one teacher pool each; their counts together:
    tasks = {**store.manifest("task_ideas").counts, **store.manifest("tasks").counts}
    assert {k: v for k, v in tasks.items() if "dropped" in k or k.startswith("tasks")} == {
        "tasks": 1,
        "tasks_kept_unstandardized": 0,
        "ideas_dropped_near_duplicate": 1,
        "ideas_dropped_two_texts": 1,
        "ideas_dropped_over_limit": 1,
        "ideas_items_dropped": 1,  # the idea without name or description
        "tasks_dropped_unstandardized": 1,  # c0-t1: its stage-2 answer never parsed
        "tasks_dropped_two_texts": 0,
        "seed_demos_dropped_near_duplicate": 0,
        "seed_demos_dropped_over_limit": 0,
        "seed_demos_dropped_reference_text": 0,
        "seed_demos_dropped_two_texts": 0,
        "standardize_items_dropped": 1,  # the example without an output
    }
    rejects = {(r["location"], r["reason"]) for r in store.read_rejects("tasks").to_pylist()}
    assert rejects == {
        ("task2-c0-t1", "task_standardization: no task name and description found"),
        ("c0-t1", "task never standardized: dropped"),
    }
    demos = store.manifest("demos").counts
    assert demos["demos"] == 2 and demos["teacher_requests"] == 2
    assert demos["demos_dropped_reference_text"] == 1 and demos["demos_dropped_near_duplicate"] == 1
    assert demos["demos_dropped_extra_pairs"] == 1

    templates = store.read_table("templates")
    assert templates.schema.equals(TEMPLATE_SCHEMA)
    by_source = {t["source_id"]: t for t in templates.to_pylist()}
    assert sorted(by_source) == ["c0-p0", "c0-p1", "c0-p2", "c0-t0"]
    task = by_source["c0-t0"]
    assert task["kind"] == "classification" and task["template_id"] == template_id(0, "classification", "c0-t0")
    assert task["demos"] == [
        {"input": "Lovely staff.", "output": "positive"},
        {"input": "Rude waiter.", "output": "negative"},
        {"input": "Great views.", "output": "positive"},
        {"input": "The pasta was cold.", "output": '[{"span": "cold", "label": "negative"}]'},
        {"input": "Friendly, quick service.", "output": "positive"},
    ]
    report = (store.files_dir("templates") / "instructions.md").read_text(encoding="utf-8")
    assert "| task_ideas | ideas_dropped_two_texts | 1 |" in report and "| 17-32 | 2 |" in report


def test_unstandardized_tasks_can_be_kept(tmp_path, monkeypatch):
    runner = _run(tmp_path, monkeypatch, keep_unstandardized_tasks=True)
    tasks = {t["task_id"]: t for t in runner.store.read_table("tasks").to_pylist()}
    assert sorted(tasks) == ["c0-t0", "c0-t1"]
    assert tasks["c0-t1"]["standardized"] is False and tasks["c0-t1"]["seed_demos"] == []
    assert tasks["c0-t1"]["task_description"] == "Rate the tone from 1 to 5." and tasks["c0-t1"]["kind"] == "rating"
    counts = runner.store.manifest("tasks").counts
    assert counts["tasks_kept_unstandardized"] == 1 and counts["tasks_dropped_unstandardized"] == 0
