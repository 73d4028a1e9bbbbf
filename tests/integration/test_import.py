"""Starting from teacher answers a user already has: import -> difficulty -> selection on real Ray and a real scorer."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import tiny_config

from compeffdist.config import JobConfig
from compeffdist.pipeline import Runner, all_stages

pytestmark = pytest.mark.integration


def _answers(data_root: Path, count: int) -> list[dict]:
    """Records in the paper's released format (instruction, output, selected_cluster_id, task_name)."""
    texts = [r["sentence"] for r in json.loads((data_root / "sc/yelp2/train.json").read_text("utf-8-sig"))[:count]]
    rows = []
    for i, text in enumerate(texts):
        if i % 2:
            rows.append({"instruction": f"Classify the sentiment.\n\nInput: {text}\nOutput:",
                         "output": "positive" if i % 4 == 1 else "negative",
                         "selected_cluster_id": 1, "task_name": "polarity", "label": "never read"})  # fmt: skip
        else:
            prompt = "Analyze the tone of this text." if i % 4 == 0 else "Which emotions does this text show?"
            rows.append({"instruction": f"{prompt}\n\nInput: {text}", "output": f"The text reads as {text[:30]}",
                         "selected_cluster_id": 0, "task_name": "analysis"})  # fmt: skip
    return rows


def test_imported_answers_run_through_difficulty_and_selection(tmp_path, data_root, tiny_model_dir, ray_local):
    answers = _answers(data_root, 24)
    jsonl = tmp_path / "Teacher_50k.jsonl"
    bad = [
        "{broken json",
        json.dumps({"instruction": "x"}),  # no output
        json.dumps({"instruction": "   ", "output": "y"}),  # empty instruction
        json.dumps(answers[1]),  # a duplicate of an earlier record
    ]
    jsonl.write_text("\n".join([*(json.dumps(a) for a in answers[:12]), *bad]) + "\n", encoding="utf-8")
    parquet = tmp_path / "more.parquet"
    pq.write_table(pa.Table.from_pylist(answers[12:]), parquet)
    payload = tiny_config(
        tmp_path, data_root, tiny_model_dir,
        labeling={"imported": {"files": [{"path": str(jsonl)}, {"path": str(parquet)}], "teacher": "paper-70b"}},
        difficulty={"metric": "rank", "chat_template": False, "max_length": 256},
        selection={"method": "soft", "scope": "inprompt", "rate": 0.5, "mode": "exact"},
    )  # fmt: skip
    config = JobConfig.model_validate(payload)
    assert [s.name for s in all_stages(config)] == ["responses", "difficulty", "selection", "training", "evaluation"]
    runner = Runner(config)
    runner.run(until="selection")

    manifest = runner.store.manifest("responses")
    assert (
        manifest.counts["rows"] == 24 and manifest.counts["read"] == 28 and manifest.models == {"teacher": "paper-70b"}
    )
    rejects = {(r["location"], r["field"]): r["reason"] for r in runner.store.read_rejects("responses").to_pylist()}
    assert "not valid JSON" in rejects[("line 13", "<row>")]
    assert rejects[("line 14", "output")] == "field missing" and rejects[("line 15", "instruction")] == "field empty"
    assert rejects[("line 16", "<row>")].startswith("duplicate of record")
    responses = runner.store.read_table("responses")
    assert "label" not in responses.column_names  # other fields never enter the records
    # Groups as the official sampler's: the polarity task, and each analysis prompt on its own.
    assert len(set(responses.column("template_id").to_pylist())) == 3
    scored = runner.store.manifest("difficulty").counts
    # Long reviews are flagged as truncated and, under the official rule, scored on their visible tokens.
    assert scored["rows"] == 24 and scored["scored"] == 24 and scored["truncated"] > 0
    selection = runner.store.read_table("selection")
    assert 0 < selection.num_rows < 24 and set(selection.column("model").to_pylist()) == {"paper-70b"}

    # The same files again: nothing to do. A changed file: the import and everything after it re-run.
    assert [s.state for s in runner.run(until="selection")] == ["done"] * 3
    jsonl.write_text("\n".join(json.dumps(a) for a in answers[:12]) + "\n", encoding="utf-8")
    fresh = Runner(config)  # as the next command would see it (a runner hashes input files once)
    assert fresh.state(fresh.by_name["responses"]).state == "stale"
