"""Credentials never reach what the project prints or writes: validate output, logs, manifests, report, accounting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from compeffdist.accounting import write_accounting
from compeffdist.artifacts import ArtifactStore, Manifest
from compeffdist.cli import main
from compeffdist.config import load_config
from compeffdist.pipeline import _log
from compeffdist.redact import MASK, is_credential_name, redact_data, redact_text
from compeffdist.report import write_report
from compeffdist.stage import Stage, StageContext

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]
ACCESS, SECRET, SESSION = "AKIAEXAMPLEKEY123", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "FwoGZXIvYXdzEXAMPLESESSION"
SECRET_URI = f"s3://bucket/run?access_key={ACCESS}&secret_key={SECRET}&session_token={SESSION}&region=us-east-1"


@pytest.mark.parametrize("parameter", ["access_key", "secret_key", "session_token", "token", "password", "sig"])
def test_secret_query_parameters_are_masked_and_options_kept(parameter):
    uri = f"s3://b/x?endpoint_override=minio:9000&{parameter}=s3cr3t-value&scheme=http"
    assert redact_text(f"writing to {uri} now") == (
        f"writing to s3://b/x?endpoint_override=minio:9000&{parameter}={MASK}&scheme=http now"
    )


def test_presigned_url_and_uri_password_are_masked():
    presigned = "https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIA%2F1&X-Amz-Signature=ab12&X-Amz-Security-Token=zz"
    assert redact_text(presigned) == (
        f"https://b.s3.amazonaws.com/k?X-Amz-Credential={MASK}&X-Amz-Signature={MASK}&X-Amz-Security-Token={MASK}"
    )
    assert redact_text("https://me:ghp_personal@github.com/o/r.zip") == f"https://me:{MASK}@github.com/o/r.zip"
    assert redact_text("s3://bucket/plain/path?region=eu-west-1") == "s3://bucket/plain/path?region=eu-west-1"


def test_credential_variables_are_masked_by_name_and_by_value(monkeypatch):
    text = 'HF_TOKEN=hf_abc "AWS_SECRET_ACCESS_KEY": "wJalr/XUt" RAY_AUTH_TOKEN: tok123 max_tokens: 64 eos_token: </s>'
    assert redact_text(text) == (
        f'HF_TOKEN={MASK} "AWS_SECRET_ACCESS_KEY": "{MASK}" RAY_AUTH_TOKEN: {MASK} max_tokens: 64 eos_token: </s>'
    )
    monkeypatch.setenv("HF_TOKEN", "hf_livetokenvalue0123")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "short")  # too short to hunt for in free text
    assert redact_text("model download failed with hf_livetokenvalue0123 (short)") == (
        f"model download failed with {MASK} (short)"
    )


def test_credential_names():
    for name in ["HF_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN", "secret_key", "password", "OPENAI_API_KEY"]:
        assert is_credential_name(name), name
    for name in ["RAY_AUTH_TOKEN_PATH", "max_tokens", "prompt_tokens", "pad_token", "sort_key", "tokenizer"]:
        assert not is_credential_name(name), name


def test_redact_data_masks_fields_and_strings_and_keeps_the_rest():
    data = {"run": {"output_dir": SECRET_URI, "seed": 3}, "env": {"HF_TOKEN": "hf_x", "max_tokens": 5}, "l": ["a"]}
    clean = redact_data(data)
    assert clean["env"] == {"HF_TOKEN": MASK, "max_tokens": 5} and clean["l"] == ["a"] and clean["run"]["seed"] == 3
    assert SECRET not in str(clean) and "region=us-east-1" in clean["run"]["output_dir"]
    assert data["env"]["HF_TOKEN"] == "hf_x"  # a copy: the config itself keeps its values


def test_validate_prints_the_config_without_uri_credentials(capsys, data_root, monkeypatch):
    monkeypatch.setenv("COMPEFFDIST_DATA_ROOT", str(data_root))
    assert main(["validate", str(REPO / "configs" / "local.yaml"), "--set", f"run.output_dir={SECRET_URI}"]) == 0
    out = capsys.readouterr().out
    assert f"access_key={MASK}&secret_key={MASK}&session_token={MASK}&region=us-east-1" in out
    for secret in (ACCESS, SECRET, SESSION):
        assert secret not in out


def test_config_errors_are_printed_without_credentials(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("run: {name: x}\nmodels: {teacher: {name: t}, student: {name: s}}\n", encoding="utf-8")
    with pytest.raises(SystemExit):
        main(["validate", str(bad), "--set", f"training.zero_stage={SECRET_URI}"])
    err = capsys.readouterr().err
    assert "training.zero_stage" in err and SECRET not in err


def test_manifest_report_and_accounting_are_written_redacted(tmp_path, data_root, monkeypatch):
    monkeypatch.setenv("COMPEFFDIST_DATA_ROOT", str(data_root))
    config = load_config(REPO / "configs" / "local.yaml", {"run.output_dir": str(tmp_path / "run")})
    store = ArtifactStore(tmp_path / "run")
    files = tmp_path / "files"
    files.mkdir()
    (files / "summary.md").write_text(f"# Pool\n\nread from {SECRET_URI}\n", encoding="utf-8")
    store.commit(Manifest("pool", "h", {}, 1, models={"teacher": SECRET_URI}), pa.table({"x": [1]}), files_from=files)
    accounting = write_accounting(config, store, ["pool"])
    report = write_report(store, ["pool"], accounting, "t")
    written = {
        "manifest": (tmp_path / "run" / "pool" / "manifest.json").read_text(),
        "accounting": (tmp_path / "run" / "accounting.json").read_text(),
        "report": report.read_text(),
    }
    for name, text in written.items():
        assert SECRET not in text and ACCESS not in text, name
        assert f"secret_key={MASK}" in text, name
    assert store.manifest("pool").models == {"teacher": redact_text(SECRET_URI)}


def test_stage_and_pipeline_log_lines_are_redacted(tmp_path, capsys, data_root, monkeypatch):
    monkeypatch.setenv("COMPEFFDIST_DATA_ROOT", str(data_root))
    config = load_config(REPO / "configs" / "local.yaml", {"run.output_dir": str(tmp_path / "run")})
    ctx = StageContext(config, ArtifactStore(tmp_path / "run"), Stage(name="pool", run=lambda c: None), {"k": 1})
    ctx.log(f"reading {SECRET_URI}")
    _log(f"pool: writing to {SECRET_URI}")
    err = capsys.readouterr().err
    assert err.count(f"secret_key={MASK}") == 2 and SECRET not in err


def test_uncaught_exceptions_are_printed_redacted():
    code = (
        "from compeffdist.redact import install_excepthook; install_excepthook(); "
        f"raise FileNotFoundError('no manifest under {SECRET_URI}')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.returncode == 1
    assert "FileNotFoundError: no manifest under s3://bucket/run?access_key=***" in result.stderr
    assert SECRET not in result.stderr
