"""A run whose output lives on object storage (S3 protocol, moto's server): Ray actors write shards there,
stages publish there, a resumed run finds its shards there, and a model trained there is evaluated."""

from __future__ import annotations

import shutil

import pytest
from helpers import labeling_stages, tiny_config

from compeffdist.cli import main
from compeffdist.config import JobConfig
from compeffdist.pipeline import Runner
from compeffdist.stage import Stage, StageContext, StageOutput
from compeffdist.storage import Location

pytestmark = pytest.mark.integration


def test_labeling_chain_on_s3_publishes_resumes_and_reports(tmp_path, data_root, tiny_model_dir, s3_root, ray_local):
    output = Location.of(s3_root).join("labeling")
    payload = tiny_config(tmp_path, data_root, tiny_model_dir)
    payload["run"]["output_dir"] = output.uri
    config = JobConfig.model_validate(payload)
    runner = Runner(config, labeling_stages())
    runner.run(until="records")
    records = runner.store.read_table("records")

    # An interrupted teacher stage left shards on the bucket: the next run labels only the rest.
    first = records.slice(0, 4).to_pylist()
    earlier = output.join("_work", "responses", "shards", "earlier.parquet")
    import pyarrow as pa

    earlier.write_parquet(
        pa.Table.from_pylist([{**r, "response": "x", "prompt_tokens": 1, "output_tokens": 1, "finish_reason": "stop",
                               "error": None, "error_kind": None, "model": str(tiny_model_dir), "attempts": 1}
                              for r in first])
    )  # fmt: skip
    runner.run()
    responses = runner.store.read_table("responses")
    ids = responses.column("record_id").to_pylist()
    assert sorted(ids) == sorted(records.column("record_id").to_pylist()) and len(set(ids)) == len(ids)
    assert runner.store.manifest("responses").counts["resumed"] == 4
    assert not output.join("_work", "responses").exists()  # published, work area cleaned up
    assert all(p.uri.startswith("s3://") for p in runner.store.parts("responses"))

    # Everything is up to date when asked again, from a fresh process's point of view.
    assert {s.state for s in Runner(config, labeling_stages()).run()} == {"done"}


def test_a_model_trained_into_s3_is_evaluated_from_there(tmp_path, data_root, tiny_model_dir, s3_root, ray_local):
    from compeffdist.evaluation.stages import STAGES as EVALUATION

    def fake_training(ctx: StageContext) -> StageOutput:
        shutil.copytree(tiny_model_dir, ctx.files_dir / "model")
        return StageOutput(counts={"steps": 0})

    def no_responses(ctx: StageContext) -> StageOutput:  # nothing held out: evaluation reads no record
        return StageOutput(counts={"rows": 0})

    payload = tiny_config(
        tmp_path, data_root, tiny_model_dir,
        evaluation={"datasets": ["sc/sst2"], "limit": 2, "seeds": [42], "models": ["student"]},
    )  # fmt: skip
    payload["run"]["output_dir"] = Location.of(s3_root).join("evaluation").uri
    stages = [Stage(name="responses", run=no_responses), Stage(name="training", run=fake_training), *EVALUATION]
    runner = Runner(JobConfig.model_validate(payload), stages)
    runner.run()
    manifest = runner.store.manifest("evaluation")
    assert manifest.models["student"].startswith("s3://") and manifest.counts["evaluations"] == 1
    assert (runner.store.files_dir("evaluation") / "evaluation.md").is_file()  # downloaded for reading


def test_cli_status_and_set_override_point_at_the_bucket(tmp_path, data_root, s3_root, capsys):
    config = tmp_path / "job.yaml"
    config.write_text(
        f"run: {{data_root: {data_root}, output_dir: local-run}}\n"
        "models: {teacher: {name: t}, student: {name: s}}\n",
        encoding="utf-8",
    )
    uri = Location.of(s3_root).join("cli").uri
    assert main(["validate", str(config), "--set", f"run.output_dir={uri}"]) == 0
    assert f"output_dir: {uri}" in capsys.readouterr().out
    assert main(["status", str(config), "--set", f"run.output_dir={uri}"]) == 0
    assert "missing" in capsys.readouterr().out
