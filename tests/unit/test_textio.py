"""Tolerant text readers: BOM, non-UTF-8, empty texts, malformed JSON rows are reported, never fatal."""

from __future__ import annotations

import pytest

from compeffdist.data.textio import read_texts

pytestmark = pytest.mark.unit


def test_jsonl_with_bom_bad_rows_and_non_utf8(tmp_path):
    path = tmp_path / "texts.jsonl"
    lines = [
        b'\xef\xbb\xbf{"text": "first good text"}',
        b'{"text": "   "}',
        b'{"text": "broken',
        b'{"body": "wrong field"}',
        b'{"text": "caf\xe9 latin-1 bytes"}',
        b"",
        b'{"text": 42}',
        b'["not", "an", "object"]',
        b'{"text": "last good text"}',
    ]
    path.write_bytes(b"\n".join(lines))
    result = read_texts(path)
    assert [r["text"] for r in result.rows] == ["first good text", "last good text"]
    by_line = {r["location"]: r for r in result.rejects}
    assert by_line["line 2"]["reason"] == "empty text"
    assert "malformed JSON" in by_line["line 3"]["reason"]
    assert by_line["line 4"]["field"] == "text" and by_line["line 4"]["reason"] == "field missing"
    assert "not valid UTF-8" in by_line["line 5"]["reason"]
    assert "got int" in by_line["line 7"]["reason"]
    assert "got list" in by_line["line 8"]["reason"]
    assert all(r["source"] == str(path) for r in result.rejects)
    assert len(result.rejects) == 6


def test_json_list_and_txt(tmp_path):
    json_path = tmp_path / "t.json"
    json_path.write_text('\ufeff[{"review": "nice"}, {"review": ""}]', encoding="utf-8")
    result = read_texts(json_path, text_field="review")
    assert [r["text"] for r in result.rows] == ["nice"] and result.rejects[0]["location"] == "item 1"
    txt = tmp_path / "t.txt"
    txt.write_text("one\n\ntwo\n", encoding="utf-8")
    assert [r["text"] for r in read_texts(txt).rows] == ["one", "two"]


def test_malformed_json_file_and_missing_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('[{"text": "a"},\n {"text": ', encoding="utf-8")
    result = read_texts(bad)
    assert result.rows == [] and result.rejects[0]["location"] == "line 2"
    missing = read_texts(tmp_path / "absent.jsonl")
    assert "cannot read" in missing.rejects[0]["reason"]
