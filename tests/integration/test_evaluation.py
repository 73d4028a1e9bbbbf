"""SentiBench evaluation with a real (tiny) model: the CLI side by side, and the Ray stage of the pipeline."""

from __future__ import annotations

import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from compeffdist.cli import main
from compeffdist.config import JobConfig
from compeffdist.pipeline import Runner
from compeffdist.stage import Stage, StageContext, StageOutput

pytestmark = pytest.mark.integration
DATASETS = ["sc/sst2", "multifaced/pstance", "absa/atsa_rest16", "absa/opener"]


def test_cli_evaluates_models_side_by_side(tmp_path, data_root, tiny_model_dir, capsys, monkeypatch):
    monkeypatch.setenv("COMPEFFDIST_DATA_ROOT", str(data_root))
    out = tmp_path / "eval"
    code = main([
        "evaluate", "--model", f"student={tiny_model_dir}", "--model", f"base={tiny_model_dir}",
        "--datasets", *DATASETS, "--limit", "3", "--seeds", "42", "52", "--out", str(out),
    ])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "student: overall" in printed and "base: overall" in printed
    results = json.loads((out / "results.json").read_text())
    rows = results["rows"]
    assert len(rows) == 2 * len(DATASETS) * 2  # models × datasets × seeds
    for row in rows:
        assert 0.0 <= row["f1"] <= 1.0 and 0.0 <= row["invalid_rate"] <= 1.0 and row["n"] == 3
        assert {"precision", "recall", "seconds", "seed", "group"} <= set(row)
    classification = [r for r in rows if r["dataset"] == "sc/sst2"]
    assert all(r["accuracy"] is not None and r["invalid_rate"] == 0.0 for r in classification)
    # Same weights under two labels: the same numbers (greedy decoding, same seeds).
    by_model = results["summary"]
    assert by_model["student"]["datasets"] == by_model["base"]["datasets"]
    table = (out / "evaluation.md").read_text()
    assert "| dataset | student | base |" in table and "**overall**" in table
    assert (out / "evaluation.png").stat().st_size > 0


def test_cli_evaluate_rejects_bad_arguments(tmp_path, data_root, capsys, monkeypatch):
    monkeypatch.setenv("COMPEFFDIST_DATA_ROOT", str(data_root))
    assert main(["evaluate", "--model", "x", "--datasets", "sc/nope", "--out", str(tmp_path)]) == 2
    assert "unknown datasets" in capsys.readouterr().err
    assert main(["evaluate", "--model", "a=x", "--model", "a=y", "--out", str(tmp_path)]) == 2
    assert "two models are labelled 'a'" in capsys.readouterr().err


HELDOUT_ANSWERS = [
    ("positive", "Great food and friendly staff."), ("negative", "Cold fries, rude waiter."),
    ("positive", "Loved every minute."), ("neutral", "It was a restaurant."),
]  # fmt: skip


def fake_responses(ctx: StageContext) -> StageOutput:
    """Teacher-labeled records as the responses stage publishes them: classification and analysis kinds."""
    from compeffdist.chat import MESSAGES_TYPE, user_turn

    rows = []
    for i in range(24):
        label, text = HELDOUT_ANSWERS[i % len(HELDOUT_ANSWERS)]
        kind = "classification" if i % 3 else "analysis"
        instruction = f"Classify the sentiment.\n\nInput: {text}\nOutput:"
        response = label if kind == "classification" else f"The text reads as {label}: {text}"
        rows.append({"record_id": f"rec{i:03d}", "kind": kind, "instruction": instruction,
                     "messages": user_turn(instruction), "response": "" if i == 5 else response,
                     "error": None})  # fmt: skip
    schema = pa.schema([("record_id", pa.string()), ("kind", pa.string()), ("instruction", pa.string()),
                        ("messages", MESSAGES_TYPE), ("response", pa.string()), ("error", pa.string())])  # fmt: skip
    return StageOutput(table=pa.Table.from_pylist(rows, schema=schema))


def test_evaluation_stage_runs_on_ray(tmp_path, data_root, tiny_model_dir, ray_local):
    from helpers import tiny_config

    from compeffdist.evaluation.heldout import heldout_ids

    def fake_training(ctx: StageContext) -> StageOutput:
        shutil.copytree(tiny_model_dir, ctx.files_dir / "model")
        return StageOutput(counts={"steps": 0})

    from compeffdist.evaluation.stages import STAGES as EVALUATION

    payload = tiny_config(
        tmp_path, data_root, tiny_model_dir,
        evaluation={"datasets": ["sc/twitter", "absa/acsa_rest16"], "limit": 2, "seeds": [42],
                    "models": ["student", "base_student"], "max_new_tokens": 16, "bootstrap_resamples": 200,
                    "heldout": {"fraction": 0.5, "seed": 3}, "agreement_max_new_tokens": 8},
    )  # fmt: skip
    stages = [Stage(name="training", run=fake_training), Stage(name="responses", run=fake_responses), *EVALUATION]
    config = JobConfig.model_validate(payload)
    runner = Runner(config, stages)
    runner.run()
    manifest = runner.store.manifest("evaluation")
    assert manifest.counts["evaluations"] == 4
    assert manifest.extra["actor_seconds"] > 0 and manifest.extra["gpu_hours"] == 0.0  # a CPU task was busy
    assert set(manifest.extra["overall"]) == {"student", "base_student"}
    table = runner.store.read_table("evaluation").to_pylist()
    assert {r["model"] for r in table} == {"student", "base_student"}
    assert all(len(r["f1_replicates"]) == 200 for r in table)
    files = runner.store.files_dir("evaluation")
    assert (files / "evaluation.md").is_file() and (files / "results.json").is_file()
    assert "[" in (files / "evaluation.md").read_text() and "±" not in (files / "evaluation.md").read_text()

    # Held-out records: exactly the hash split's usable ones (rec005 has an empty answer), scored for each model.
    ids = [f"rec{i:03d}" for i in range(24)]
    expected = {
        rid
        for rid, out in zip(ids, heldout_ids(ids, config.evaluation.heldout), strict=True)
        if out and rid != "rec005"
    }
    heldout = pq.read_table(files / "heldout_agreement.parquet").to_pylist()
    assert expected and {r["record_id"] for r in heldout} == expected
    assert manifest.counts["heldout_records"] == len(expected)
    for row in heldout:
        assert row["nll"] > 0 and row["tokens"] > 0
        if row["kind"] == "classification":
            assert row["teacher_label"] in {"positive", "negative", "neutral"} and row["model_answer"] is not None
        else:
            assert row["teacher_label"] is None
    # The same weights under two labels: identical NLL, a zero difference that the CI cannot exclude.
    by_model = {(r["model"], r["record_id"]): r["nll"] for r in heldout}
    assert all(by_model[("student", rid)] == pytest.approx(by_model[("base_student", rid)]) for rid in expected)
    headline = manifest.extra["headline"]
    assert headline.startswith(f"On {len(expected)} held-out teacher-labeled records") and "includes 0" in headline
    assert "Trained student − base student" in (files / "teacher_agreement.md").read_text()
    # A second run is free: the stage is up to date.
    assert runner.state(stages[2]).state == "done"
