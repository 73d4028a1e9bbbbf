"""Training data preparation on a real local Ray: selection parts -> packed sequence parts -> Ray Train's dataset."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from compeffdist.config import ModelSpec, TrainingConfig
from compeffdist.storage import Location

pytestmark = pytest.mark.integration
MAX_LEN = 128


def selection_rows(count: int) -> list[dict]:
    rows = []
    for i in range(count):
        text = f"Review {i}: the soup was {'hot' if i % 3 else 'cold'} and the staff {'kind' if i % 2 else 'rude'}."
        rows.append({"record_id": f"r{i:03d}", "messages": [{"role": "user", "content": text}],
                     "response": "positive" if i % 2 else "negative"})  # fmt: skip
    rows[5]["response"] = "  "  # empty teacher response
    rows[17]["messages"] = [{"role": "assistant", "content": "hi"}]  # nothing for the response to answer
    rows[30]["messages"] = [{"role": "user", "content": "word " * 300}]  # the prompt alone fills max_seq_len
    return rows


def write_parts(rows: list[dict], folder, rows_per_part: int) -> list[Location]:
    """Selection parts as the pipeline publishes them: messages as the structured Arrow column."""
    from compeffdist.training.data import SELECTION_SCHEMA

    parts = []
    for index, start in enumerate(range(0, len(rows), rows_per_part)):
        part = Location.of(folder) / f"part-{index:05d}.parquet"
        part.write_parquet(pa.Table.from_pylist(rows[start : start + rows_per_part], schema=SELECTION_SCHEMA))
        parts.append(part)
    return parts


@pytest.fixture(scope="module")
def ray_quiet(ray_local):
    ray_local.data.DataContext.get_current().enable_progress_bars = False
    return ray_local


@pytest.fixture(scope="module")
def selection(tmp_path_factory, tiny_model_dir):
    """(rows, selection parts, student spec)."""
    rows = selection_rows(70)
    return (
        rows,
        write_parts(rows, tmp_path_factory.mktemp("selection"), rows_per_part=40),
        ModelSpec(name=str(tiny_model_dir)),
    )


def prepare(selection, out, seed=0, packing=True):
    from compeffdist.training.data import prepare_sequences

    training = TrainingConfig(max_seq_len=MAX_LEN, packing=packing)
    return prepare_sequences(selection[1], Location.of(out), selection[2], training, seed, records_per_chunk=16)


def expected_sequences(selection, seed: int, chunks: list[tuple[int, int, int, int]], packing: bool) -> list[dict]:
    """The same chunks tokenized and packed in this process (the reference the tasks must match)."""
    from compeffdist.models.registry import load_tokenizer
    from compeffdist.training.examples import build_examples
    from compeffdist.training.packing import pack_sequences, shuffled, single_sequences

    rows, _, spec = selection
    tokenizer = load_tokenizer(spec, padding_side="right")
    out = []
    for part, start, stop, offset in chunks:
        examples, _ = build_examples(rows[offset + start : offset + stop], tokenizer, MAX_LEN)
        ordered = shuffled(examples, f"{seed}/{part:05d}-{start:010d}")
        out += pack_sequences(ordered, MAX_LEN) if packing else single_sequences(ordered)
    return out


# (part, start, stop, first row of the part): 70 rows in parts of 40 and 30, chunks of 16 within each part
CHUNKS = [(0, 0, 16, 0), (0, 16, 32, 0), (0, 32, 40, 0), (1, 0, 16, 40), (1, 16, 30, 40)]


def read_all(prepared) -> list[dict]:
    return [row for part in prepared.sequences.parts for row in part.read_parquet().to_pylist()]


def test_tasks_tokenize_pack_and_reject_like_the_in_process_reference(ray_quiet, selection, tmp_path):
    prepared = prepare(selection, tmp_path / "seq")
    assert prepared.chunks == 5 and prepared.resumed_chunks == 0
    assert read_all(prepared) == expected_sequences(selection, 0, CHUNKS, packing=True)
    counts = prepared.counts
    assert (counts["records"], counts["examples"], counts["rejected"]) == (70, 67, 3)
    assert counts["sequences"] == prepared.sequences.total == sum(prepared.sequences.rows) < 67  # packed
    rejects = {r["record_id"]: (r["field"], r["reason"]) for r in prepared.rejects()}
    assert rejects["r005"] == ("response", "empty or missing teacher response")
    assert rejects["r017"][0] == "messages" and "last message" in rejects["r017"][1]
    assert rejects["r030"] == ("response", "prompt fills max_seq_len: no response token left")
    unpacked = prepare(selection, tmp_path / "single", packing=False)
    assert unpacked.counts["sequences"] == 67 and read_all(unpacked) == expected_sequences(selection, 0, CHUNKS, False)


def test_a_rerun_keeps_finished_chunks_and_redoes_only_the_missing_one(ray_quiet, selection, tmp_path):
    out = tmp_path / "seq"
    first = prepare(selection, out)
    before = {p.name: p.read_parquet() for p in first.sequences.parts}
    first_rows = read_all(first)
    (out / "done-00001-0000000000.json").unlink()  # as if the stage was killed while that chunk ran
    (out / "seq-00001-0000000000.parquet").unlink()
    again = prepare(selection, out)
    assert (again.chunks, again.resumed_chunks) == (5, 4)
    assert {p.name: p.read_parquet() for p in again.sequences.parts} == before and again.counts == first.counts
    reseeded = prepare(selection, out, seed=1)  # other settings: earlier chunks are discarded, not mixed in
    assert reseeded.resumed_chunks == 0 and json.loads((out / "settings.json").read_text())["seed"] == 1
    assert read_all(reseeded) != first_rows and reseeded.counts == first.counts


def test_training_dataset_carries_a_global_row_index_in_part_order(ray_quiet, selection, tmp_path):
    from compeffdist.training.data import sequences_dataset
    from compeffdist.training.packing import ROW_INDEX

    prepared = prepare(selection, tmp_path / "seq")
    rows = sorted(sequences_dataset(prepared.sequences).take_all(), key=lambda row: row[ROW_INDEX])
    assert [row[ROW_INDEX] for row in rows] == list(range(prepared.sequences.total))  # position in the part order
    assert [list(row["input_ids"]) for row in rows] == [row["input_ids"] for row in read_all(prepared)]
