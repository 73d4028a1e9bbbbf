"""Teacher answers read from user files: every format, bad rows named by file, row and field."""

from __future__ import annotations

import csv
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from compeffdist.data.answers import read_answer_records
from compeffdist.imported import answer_id, group_of

pytestmark = pytest.mark.unit

FIELDS = ["instruction", "output", "task_name"]
GOOD = {"instruction": "Classify the sentiment.\n\nInput: great food\nOutput:", "output": "positive",
        "task_name": "polarity", "label": "ignored"}  # fmt: skip


def test_jsonl_reads_records_and_names_bad_lines(tmp_path):
    path = tmp_path / "answers.jsonl"
    path.write_bytes(
        b"\xef\xbb\xbf" + json.dumps(GOOD).encode() + b"\n\n{not json\n" + b'"just a string"\n' + b"\xff\xfe\n"
    )
    rows = list(read_answer_records(path, FIELDS))
    assert rows[0] == ("line 1", {k: GOOD[k] for k in FIELDS})  # the BOM is skipped, other fields never read
    assert rows[1][0] == "line 3" and "not valid JSON" in rows[1][1]
    assert rows[2] == ("line 4", "expected a record (object), got str")
    assert rows[3][0] == "line 5" and "UTF-8" in rows[3][1]


def test_json_csv_tsv_and_parquet_give_the_same_records(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"data": [GOOD, GOOD]}), encoding="utf-8")
    for name, delimiter in (("a.csv", ","), ("a.tsv", "\t")):
        with open(tmp_path / name, "w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(GOOD), delimiter=delimiter)
            writer.writeheader()
            writer.writerow(GOOD)  # the instruction's line breaks are quoted
    pq.write_table(pa.Table.from_pylist([GOOD]), tmp_path / "a.parquet")
    expected = {k: GOOD[k] for k in FIELDS}
    assert [r for _, r in read_answer_records(tmp_path / "a.json", FIELDS)] == [expected, expected]
    assert [r for _, r in read_answer_records(tmp_path / "a.csv", FIELDS)] == [expected]
    assert [r for _, r in read_answer_records(tmp_path / "a.parquet", FIELDS)] == [expected]
    assert [r for _, r in read_answer_records(tmp_path / "a.tsv", FIELDS)] == [expected]


def test_csv_row_with_extra_fields_is_named(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("instruction,output\nx,y\nx,y,z\n", encoding="utf-8")
    rows = list(read_answer_records(path, ["instruction", "output"]))
    assert rows[0] == ("line 2", {"instruction": "x", "output": "y"})
    assert rows[1][0] == "line 3" and "more fields" in rows[1][1]


def test_ids_and_groups_follow_the_official_sampler():
    assert answer_id("a", "b") == answer_id("a", "b") != answer_id("a", "c")
    # Task records group by (cluster, task name); analysis records by their prompt before "Input:".
    one = group_of("Classify.\n\nInput: x\nOutput:", 3, "polarity")
    two = group_of("Classify.\n\nInput: y\nOutput:", "3", "polarity")
    assert one == two and one[:2] == (3, "polarity")
    tone = group_of("Analyze the tone.\n\nInput: x", 3, "analysis")
    irony = group_of("Analyze the irony.\n\nInput: x", 3, "analysis")
    assert tone[2] != irony[2] and group_of("Analyze the tone.\n\nInput: y", 3, "analysis") == tone
    assert group_of("Free text", None, None)[:2] == (0, "imported")
