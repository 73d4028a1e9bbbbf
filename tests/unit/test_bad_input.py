"""The bad-input corpus, through the pool stage and the command line: nothing lost, nothing silently wrong.

The corpus is built here, by the tests (no third-party data): user files in every supported format,
files whose rows are all bad, empty files. Each case was a silent loss or a traceback before.
The pool stage needs no Ray, so command-line runs here replace `ensure_ray` with a no-op.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from compeffdist.artifacts import Manifest
from compeffdist.cli import EXIT_STAGE_FAILED, main
from compeffdist.config import load_config
from compeffdist.data.pool import STAGES as POOL
from compeffdist.failures import StageFailed, failure_dir
from compeffdist.pipeline import Runner
from compeffdist.rowmap import EXPECTED_ROWS
from compeffdist.stage import StageContext
from compeffdist.storage import Location

pytestmark = pytest.mark.unit

REVIEWS = ["Lovely staff, and the room was spotless.", "The food was cold and bland.", "Fine, nothing special."]
LABELS = ["positive", "negative", "neutral"]


def build_corpus(folder: Path) -> dict[str, Path]:
    """User files: good ones in each format next to labels and ids, and bad or empty ones."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = list(zip(REVIEWS, LABELS, strict=True))
    files = {
        "labels.csv": "id,text,label\n" + "".join(f'{i},"{t}",{lab}\n' for i, (t, lab) in enumerate(rows)),
        "labels.tsv": "text\tlabel\n" + "".join(f"{t}\t{lab}\n" for t, lab in rows),
        "records.json": json.dumps({"data": [{"id": i, "text": t, "label": lab} for i, (t, lab) in enumerate(rows)]}),
        "all_bad.jsonl": '{"text": "unterminated\n{"body": "no text field"}\n{"text": ""}\n{"text": 7}\n',
        "empty.jsonl": "",
    }
    paths = {}
    for name, text in files.items():
        paths[name] = folder / name
        paths[name].write_text(text, encoding="utf-8")
    table = pa.table({"id": [0, 1, 2], "text": REVIEWS, "label": LABELS})
    for name, compression in (("snappy.parquet", "snappy"), ("uncompressed.parquet", "none")):
        paths[name] = folder / name
        pq.write_table(table, paths[name], compression=compression)
    (folder / "not_utf8.jsonl").write_bytes(b'{"text": "caf\xe9"}\n')
    paths["not_utf8.jsonl"] = folder / "not_utf8.jsonl"
    return paths


def _job(tmp_path: Path, data_root: Path, files: list[Path], datasets: list[str] | None = None) -> Path:
    model = tmp_path / "model"  # a folder with config.json: what the preflight asks of a local model
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text("{}", encoding="utf-8")
    config = {
        "run": {"output_dir": str(tmp_path / "run"), "data_root": str(data_root)},
        "models": {"teacher": {"name": str(model)}, "student": {"name": str(model)}, "embedding": {"name": str(model)}},
        "pool": {"datasets": datasets or [], "texts_per_dataset": 5, "files": [{"path": str(p)} for p in files]},
    }
    path = tmp_path / "job.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    return path


@pytest.fixture
def no_ray(monkeypatch):
    import compeffdist.raysession

    monkeypatch.setattr(compeffdist.raysession, "ensure_ray", lambda config: None)


@pytest.mark.parametrize("name", ["labels.csv", "labels.tsv", "records.json", "snappy.parquet", "uncompressed.parquet"])
def test_user_files_enter_the_pool_as_texts_only(tmp_path, data_root, name):
    corpus = build_corpus(tmp_path / "corpus")
    runner = Runner(load_config(_job(tmp_path, data_root, [corpus[name]])), POOL)
    runner.run()
    pool = runner.store.read_table("pool")
    assert sorted(pool.column("text").to_pylist()) == sorted(REVIEWS)
    assert runner.store.manifest("pool").counts["rejects"] == 0
    assert all(str(corpus[name]) in source for source in pool.column("source").to_pylist())


def test_a_pool_of_only_bad_rows_fails_cleanly_and_keeps_the_reasons(tmp_path, data_root, capsys, no_ray):
    corpus = build_corpus(tmp_path / "corpus")
    job = _job(tmp_path, data_root, [corpus["all_bad.jsonl"], corpus["not_utf8.jsonl"]])
    runner = Runner(load_config(job), POOL)
    with pytest.raises(StageFailed) as info:
        runner.run()
    message = str(info.value)
    assert message.startswith("stage pool: the user-text pool is empty")
    assert "5 row(s) rejected" in message and "malformed JSON" in message and "not valid UTF-8" in message
    rejects = Location.of(runner.store.root).join("_failed", "pool", "rejects.parquet").read_parquet()
    assert rejects.num_rows == 5 and set(rejects.column("source").to_pylist()) == {
        str(corpus["all_bad.jsonl"]),
        str(corpus["not_utf8.jsonl"]),
    }
    assert runner.state(POOL[0]).state == "failed" and runner.store.manifest("pool") is None

    assert main(["run", str(job), "--until", "pool"]) == EXIT_STAGE_FAILED
    captured = capsys.readouterr()
    assert "error: stage pool: the user-text pool is empty" in captured.err and "Traceback" not in captured.err
    assert "pool               failed" in captured.out

    good = _job(tmp_path, data_root, [corpus["labels.csv"]])
    assert main(["run", str(good), "--until", "pool"]) == 0
    assert not failure_dir(runner.store.root, "pool").exists()  # a publish clears the failure record


def test_an_empty_user_file_is_a_warning_naming_it(tmp_path, data_root, capsys):
    corpus = build_corpus(tmp_path / "corpus")
    runner = Runner(load_config(_job(tmp_path, data_root, [corpus["empty.jsonl"]], datasets=["sc/yelp2"])), POOL)
    runner.run()
    warning = f"pool.files.0: {corpus['empty.jsonl']} (jsonl) is empty"
    assert warning in capsys.readouterr().err
    assert runner.store.manifest("pool").extra["warnings"] == [warning]
    assert runner.store.read_table("pool").num_rows == 5


def test_an_empty_pool_from_empty_files_alone_fails_naming_them(tmp_path, data_root):
    corpus = build_corpus(tmp_path / "corpus")
    runner = Runner(load_config(_job(tmp_path, data_root, [corpus["empty.jsonl"]])), POOL)
    with pytest.raises(StageFailed, match="no row was rejected"):
        runner.run()


# -- status: a half-done stage shows its shards -----------------------------------------------------------


def test_status_shows_a_half_done_stage_as_partial(tmp_path, data_root, capsys):
    job = _job(tmp_path, data_root, [build_corpus(tmp_path / "corpus")["labels.csv"]])
    config = load_config(job)
    runner = Runner(config)
    records = runner.store.commit(
        Manifest(stage="records", config_hash="-", input_fingerprints={}, seed=1),
        pa.table({"record_id": list("abcdefghijklmnop")}),
    )
    assert records.counts["rows"] == 16
    responses = runner.by_name["responses"]
    ctx = StageContext(config, runner.store, responses, runner.expected_key(responses))  # as an interrupted run left it
    for shard, ids in (("one", "abcd"), ("two", "efgh")):
        (ctx.work / "shards" / f"{shard}.parquet").write_parquet(pa.table({"record_id": list(ids)}))
    (ctx.work / "shards" / EXPECTED_ROWS).write_text('{"rows": 16}')  # what the map wrote when it started
    attributes = runner.store.work("attributes").join("teacher", "attributes-0", "shards")
    runner.store.work("attributes").join("key.json").write_text("{}")
    (attributes / "x.parquet").write_parquet(pa.table({"request_id": ["r1", "r2", "r3"]}))

    assert main(["status", str(job)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:]}
    assert lines["responses"].split()[1] == "partial"
    assert lines["responses"].endswith("partial: 8 of 16 rows (the next run resumes)")
    assert lines["attributes"].endswith(
        "partial: 3 rows in shards (config or inputs changed: the next run discards them)"
    )
    assert lines["difficulty"].split()[1] == "missing"  # no work area: nothing to show
