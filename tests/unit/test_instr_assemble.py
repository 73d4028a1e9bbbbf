"""Template assembly (S11): joins by ids whatever the row order, one demo filter, typed kinds, drop counts
under their own names, and template ids that survive regenerated demos."""

from __future__ import annotations

import random

import pytest

from compeffdist.instructions.ids import demo_id, template_id
from compeffdist.instructions.s11_templates import TEMPLATE_SCHEMA, assemble_templates

pytestmark = pytest.mark.unit

CLUSTERS = {0: "tone", 1: "sarcasm"}
ANALYSIS = [
    {"prompt_id": "c0-p0", "cluster_id": 0, "prompt_index": 0, "prompt": "Please analyze the tone of this text."},
    {"prompt_id": "c1-p0", "cluster_id": 1, "prompt_index": 0, "prompt": "Which words make this text sarcastic?"},
    {"prompt_id": "c1-p1", "cluster_id": 1, "prompt_index": 1, "prompt": "which words make this text sarcastic"},
    {"prompt_id": "c9-p0", "cluster_id": 9, "prompt_index": 0, "prompt": "A prompt of a cluster not used here."},
]


def _task(task_id: str, cluster_id: int, index: int, kind: str, description: str, seeds: list[tuple[str, str]]):
    return {
        "task_id": task_id, "cluster_id": cluster_id, "task_index": index, "kind": kind,
        "task_name": f"task {task_id}", "task_description": description,
        "seed_demos": [{"input": i, "output": o} for i, o in seeds],
    }  # fmt: skip


TASKS = [
    _task("c0-t0", 0, 0, "classification", "Classify the tone: positive or negative.", [("Great staff.", "positive")]),
    _task("c0-t1", 0, 1, "rating", "Rate the tone from 1 to 5.", [("Awful food.", "1")]),
    _task("c1-t0", 1, 0, "extraction", "Extract the sarcastic phrase.", []),
]


def _demo(task_id: str, k: int, j: int, text: str, output: str) -> dict:
    return {"demo_id": demo_id(task_id, k, j), "task_id": task_id, "request_index": k, "pair_index": j,
            "input": text, "output": output}  # fmt: skip


DEMOS = [
    _demo("c0-t0", 0, 0, "Loved every bite.", "positive"),
    _demo("c0-t0", 2, 0, "Cold soup again.", "negative"),
    _demo("c0-t0", 10, 0, "Slow but friendly.", "positive"),  # d10 sorts after d2 (request numbers compare as numbers)
    _demo("c0-t0", 10, 1, "great staff", "positive"),  # near-duplicate of the seed demo
    _demo("c0-t1", 0, 0, "Fine, I guess.", "3"),
    _demo("c1-t0", 0, 0, "Oh great, another delay.", "Oh great"),
    _demo("c7-t0", 0, 0, "A demo of a task that is not there.", "x"),
]


def _assemble(demos=DEMOS, tasks=TASKS, analysis=ANALYSIS):
    return assemble_templates(CLUSTERS, analysis, tasks, demos, near_duplicate_threshold=0.85)


def test_demos_join_by_task_id_whatever_the_row_order():
    templates, _ = _assemble()
    shuffled = list(DEMOS)
    random.Random(3).shuffle(shuffled)
    again, _ = _assemble(shuffled, list(reversed(TASKS)), list(reversed(ANALYSIS)))
    assert again == templates
    by_source = {t["source_id"]: t for t in templates}
    assert [d["input"] for d in by_source["c0-t0"]["demos"]] == [
        "Great staff.", "Loved every bite.", "Cold soup again.", "Slow but friendly.",
    ]  # fmt: skip
    assert [d["input"] for d in by_source["c0-t1"]["demos"]] == ["Awful food.", "Fine, I guess."]
    assert by_source["c1-t0"]["demos"] == [{"input": "Oh great, another delay.", "output": "Oh great"}]


def test_kinds_sources_and_drop_counts():
    templates, counts = _assemble()
    assert [(t["source_id"], t["kind"], t["cluster_id"], t["perspective"]) for t in templates] == [
        ("c0-p0", "analysis", 0, "tone"),
        ("c1-p0", "analysis", 1, "sarcasm"),
        ("c0-t0", "classification", 0, "tone"),
        ("c0-t1", "rating", 0, "tone"),
        ("c1-t0", "extraction", 1, "sarcasm"),
    ]
    assert all(t["task_name"] == "analysis" and t["demos"] == [] for t in templates if t["kind"] == "analysis")
    assert counts == {
        "templates_dropped_unknown_cluster": 1,  # c9-p0: its cluster is not among those used
        "templates_dropped_near_duplicate": 1,  # c1-p1
        "template_demos_dropped_near_duplicate": 1,  # "great staff"
        "template_demos_dropped_reference_text": 0,
        "template_demos_dropped_two_texts": 0,
        "demos_of_unknown_tasks": 1,  # c7-t0
    }
    assert set(templates[0]) == set(TEMPLATE_SCHEMA.names)


def test_template_ids_are_stable_when_demos_change_and_unique():
    templates, _ = _assemble()
    ids = [t["template_id"] for t in templates]
    assert len(set(ids)) == len(ids)
    assert all(t["template_id"] == template_id(t["cluster_id"], t["kind"], t["source_id"]) for t in templates)
    # The demos stage re-ran and wrote other demos for c0-t0, and none for c1-t0.
    regenerated = [{**d, "input": d["input"] + " Truly."} for d in DEMOS[:3]] + DEMOS[3:5]
    again, _ = _assemble(regenerated)
    assert [t["template_id"] for t in again] == ids
    changed = {t["source_id"] for t, u in zip(templates, again, strict=True) if t["content_hash"] != u["content_hash"]}
    assert changed == {"c0-t0", "c1-t0"}  # the content hash follows the demos
    # The id does depend on identity: the same text under another cluster or source is another template.
    others = {template_id(1, "rating", "c0-t1"), template_id(0, "rating", "c0-t2"), template_id(0, "analysis", "c0-t1")}
    assert template_id(0, "rating", "c0-t1") not in others
