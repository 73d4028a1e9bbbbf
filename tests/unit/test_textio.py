"""User text files read by format (JSONL, JSON, CSV/TSV, Parquet, text); bad rows are rejects, never fatal."""

from __future__ import annotations

import pytest

from compeffdist.data.textio import format_of, read_texts

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


# -- formats: every file is read by its format; only the text column enters the pool ------------------


def test_csv_reads_the_text_column_only_with_quotes_line_breaks_and_a_bom(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_bytes(
        b"\xef\xbb\xbfid,text,label\n"
        b'1,"Lovely staff, great ""food""",positive\n'
        b'2,"two\nlines",negative\n'
        b"3,plain text,neutral\n"
    )
    result = read_texts(path)
    assert [r["text"] for r in result.rows] == ['Lovely staff, great "food"', "two\nlines", "plain text"]
    assert [r["location"] for r in result.rows] == ["line 2", "line 3", "line 5"]
    assert result.rejects == [] and result.records == 3
    assert not any("positive" in r["text"] or r["text"].startswith("1,") for r in result.rows)


def test_csv_bad_rows_are_rejects_naming_line_and_column(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(
        b"id,review,label\n"
        b"1,good one,positive\n"
        b"2,,negative\n"  # empty text
        b"3,caf\xe9 au lait,neutral\n"  # latin-1 byte in the text cell
        b"4,unquoted, comma,positive\n"  # one field too many: the text would be cut
        b"5,too few\n"
        b"\n"
        b"6,last one,negative\n"
    )
    result = read_texts(path, text_field="review")
    assert [r["text"] for r in result.rows] == ["good one", "last one"]
    by_line = {r["location"]: r for r in result.rejects}
    assert by_line["line 3"]["reason"] == "empty text" and by_line["line 3"]["field"] == "review"
    assert "not valid UTF-8" in by_line["line 4"]["reason"] and "caf" in by_line["line 4"]["raw"]
    assert "4 fields where the header has 3" in by_line["line 5"]["reason"]
    assert "2 fields where the header has 3" in by_line["line 6"]["reason"]
    assert len(result.rejects) == 4 and result.records == 6


def test_csv_without_the_text_column_is_one_reject_naming_the_columns(tmp_path):
    path = tmp_path / "nocol.csv"
    path.write_text("id,body\n1,hello there\n", encoding="utf-8")
    result = read_texts(path)
    assert result.rows == []
    assert result.rejects[0]["field"] == "text" and "['id', 'body']" in result.rejects[0]["reason"]


def test_tsv_splits_on_tabs_only(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("text\tlabel\nfine, with a comma\tpositive\n", encoding="utf-8")
    assert [r["text"] for r in read_texts(path).rows] == ["fine, with a comma"]


@pytest.mark.parametrize("compression", ["snappy", "none", "zstd"])
def test_parquet_reads_the_text_column_whatever_the_compression(tmp_path, compression):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "texts.parquet"
    table = pa.table({"id": [1, 2, 3, 4], "text": ["first text", None, "  ", "fourth text"], "label": ["a"] * 4})
    pq.write_table(table, path, compression=compression)
    result = read_texts(path)
    assert [(r["text"], r["location"]) for r in result.rows] == [("first text", "row 1"), ("fourth text", "row 4")]
    rejects = [(r["location"], r["reason"]) for r in result.rejects]
    assert rejects == [("row 2", "missing (null)"), ("row 3", "empty text")]
    assert result.records == 4


def test_parquet_binary_and_dictionary_columns_and_bad_files(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    binary = tmp_path / "binary.parquet"
    pq.write_table(pa.table({"text": pa.array([b"ok bytes", b"caf\xe9"], pa.binary())}), binary)
    result = read_texts(binary)
    assert [r["text"] for r in result.rows] == ["ok bytes"] and "not valid UTF-8" in result.rejects[0]["reason"]
    dictionary = tmp_path / "dict.parquet"
    pq.write_table(pa.table({"text": pa.array(["same", "same"]).dictionary_encode()}), dictionary)
    assert [r["text"] for r in read_texts(dictionary).rows] == ["same", "same"]
    numbers = tmp_path / "numbers.parquet"
    pq.write_table(pa.table({"text": [1, 2]}), numbers)
    assert "holds int64, not text" in read_texts(numbers).rejects[0]["reason"]
    missing = tmp_path / "missing.parquet"
    pq.write_table(pa.table({"body": ["x"]}), missing)
    assert "column is missing; the file has ['body']" in read_texts(missing).rejects[0]["reason"]
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1 this is not parquet")
    assert "not a readable Parquet file" in read_texts(corrupt).rejects[0]["reason"]


def test_json_records_wrapped_in_an_object_or_as_columns(tmp_path):
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text('{"version": 2, "data": [{"text": "a text", "label": 1}, "bare string"]}', encoding="utf-8")
    assert [r["text"] for r in read_texts(wrapped).rows] == ["a text", "bare string"]
    columns = tmp_path / "columns.json"
    columns.write_text('{"text": ["one", "two"], "label": ["pos", "neg"]}', encoding="utf-8")
    assert [r["text"] for r in read_texts(columns).rows] == ["one", "two"]
    ambiguous = tmp_path / "ambiguous.json"
    ambiguous.write_text('{"train": [], "test": []}', encoding="utf-8")
    assert "the object's lists: ['train', 'test']" in read_texts(ambiguous).rejects[0]["reason"]


def test_explicit_format_wins_over_the_extension_and_unknown_extensions_are_refused(tmp_path):
    path = tmp_path / "export.data"
    path.write_text('{"text": "from jsonl"}\n', encoding="utf-8")
    assert [r["text"] for r in read_texts(path, format="jsonl").rows] == ["from jsonl"]
    with pytest.raises(ValueError, match=r"\.data.*set format: to one of jsonl, json, csv, tsv, parquet, text"):
        format_of(path)
    assert "cannot tell the format" in read_texts(path).rejects[0]["reason"]


@pytest.mark.parametrize("name", ["empty.jsonl", "empty.json", "empty.csv", "empty.tsv", "empty.txt"])
def test_empty_files_hold_no_records_and_no_rejects(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"")
    result = read_texts(path)
    assert (result.rows, result.rejects, result.records) == ([], [], 0)
