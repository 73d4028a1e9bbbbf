"""SentiBench evaluation with a real (tiny) model: the CLI side by side, and the Ray stage of the pipeline."""

from __future__ import annotations

import json
import shutil

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


def test_evaluation_stage_runs_on_ray(tmp_path, data_root, tiny_model_dir, ray_local):
    from helpers import tiny_config

    def fake_training(ctx: StageContext) -> StageOutput:
        shutil.copytree(tiny_model_dir, ctx.files_dir / "model")
        return StageOutput(counts={"steps": 0})

    from compeffdist.evaluation.stages import STAGES as EVALUATION

    payload = tiny_config(
        tmp_path, data_root, tiny_model_dir,
        evaluation={"datasets": ["sc/twitter", "absa/acsa_rest16"], "limit": 2, "seeds": [42],
                    "models": ["student", "base_student"], "max_new_tokens": 16},
    )  # fmt: skip
    stages = [Stage(name="training", run=fake_training), *EVALUATION]
    runner = Runner(JobConfig.model_validate(payload), stages)
    runner.run()
    manifest = runner.store.manifest("evaluation")
    assert manifest.counts["evaluations"] == 4
    assert manifest.extra["actor_seconds"] > 0 and manifest.extra["gpu_hours"] == 0.0  # a CPU task was busy
    assert set(manifest.extra["overall"]) == {"student", "base_student"}
    table = runner.store.read_table("evaluation").to_pylist()
    assert {r["model"] for r in table} == {"student", "base_student"}
    files = runner.store.files_dir("evaluation")
    assert (files / "evaluation.md").is_file() and (files / "results.json").is_file()
    # A second run is free: the stage is up to date.
    assert runner.state(stages[1]).state == "done"
