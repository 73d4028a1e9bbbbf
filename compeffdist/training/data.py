"""Training data on Ray Data: selection parts -> tokenized, masked, packed sequence parts -> a Ray Dataset.

`prepare_sequences` cuts the selection's Parquet parts into fixed chunks of `RECORDS_PER_CHUNK`
rows (from Parquet metadata, in the driver) and runs one Ray Data task per chunk: it reads its
rows, renders and tokenizes them with the student's chat template (examples.py), shuffles them
with a seed derived from (seed, chunk) and packs them (packing.py), then writes a sequence part,
a reject part when some rows were rejected, and last a small JSON marker with the chunk's
counts. The driver holds only chunk descriptors and per-chunk counts, never a record.

Deterministic: chunk boundaries depend on the input parts alone (not on cluster size or
scheduling), so the same inputs and settings give the same sequences in the same order.
Resumable: a chunk with a marker is done; a killed run redoes only chunks without one (their
files have fixed names and are rewritten whole). A settings file in the output folder discards
chunks made from other inputs or settings.

`sequences_dataset` reads the sequence parts back for Ray Train, adding `ROW_INDEX`: the row's
global position (part offsets come from Parquet metadata), which loop.py's epoch order permutes.
Both read with zero-CPU tasks from driver-made blocks, as rowmap does: `ray.data.read_parquet`
plans a file-listing task that asks for a whole CPU, which Ray Train workers holding every core
would never free.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from compeffdist.chat import MESSAGES_TYPE
from compeffdist.config import ModelSpec, TrainingConfig
from compeffdist.storage import Location
from compeffdist.training.packing import ROW_INDEX, SEQUENCE_COLUMNS

RECORDS_PER_CHUNK = 4096  # selection rows per task; packing never crosses a chunk (fixed: it shapes the sequences)
SELECTION_SCHEMA = pa.schema([("record_id", pa.string()), ("messages", MESSAGES_TYPE), ("response", pa.string())])
SELECTION_COLUMNS = SELECTION_SCHEMA.names  # what prepare_sequences reads from the selection parts
SEQUENCE_SCHEMA = pa.schema([(name, pa.list_(pa.int32())) for name in SEQUENCE_COLUMNS])
REJECT_SCHEMA = pa.schema([("record_id", pa.string()), ("field", pa.string()), ("reason", pa.string()),
                           ("raw", pa.string())])  # fmt: skip
SETTINGS_FILE = "settings.json"
FORMAT_VERSION = 1  # bump when the chunking, shuffling or packing changes
COUNT_KEYS = ("records", "examples", "rejected", "truncated", "sequences", "tokens", "loss_tokens")
IO_TASK_CPUS = 0  # reading sequence parts is light; see the module docstring


@dataclass(frozen=True)
class SequenceData:
    """Sequence parts in training order and the rows in each (from Parquet metadata)."""

    parts: list[Location]
    rows: list[int]

    @property
    def total(self) -> int:
        return sum(self.rows)

    @classmethod
    def of(cls, parts: list[Location]) -> SequenceData:
        """Count the rows of `parts` from their Parquet footers (no data read)."""
        return cls(list(parts), [part.parquet_rows() for part in parts])


@dataclass
class PreparedSequences:
    """What `prepare_sequences` made: the sequences, per-run counts (summed over chunks) and the reject parts."""

    sequences: SequenceData
    counts: dict[str, int] = field(default_factory=dict)
    reject_parts: list[Location] = field(default_factory=list)
    chunks: int = 0
    resumed_chunks: int = 0

    def rejects(self) -> Iterator[dict[str, Any]]:
        """Rejected rows (record_id, field, reason, raw), one reject part in memory at a time."""
        for part in self.reject_parts:
            yield from part.read_parquet().to_pylist()


def _chunk_name(part: int, start: int) -> str:
    return f"{part:05d}-{start:010d}"


def _settings(
    parts: list[Location], rows: list[int], student: ModelSpec, training: TrainingConfig, seed: int, chunk: int
) -> str:
    """Everything the sequences depend on; a different value discards earlier chunks."""
    return json.dumps(
        {
            "format": FORMAT_VERSION, "records_per_chunk": chunk, "seed": seed,
            "student": student.model_dump(mode="json"), "max_seq_len": training.max_seq_len,
            "packing": training.packing, "inputs": [[p.uri, n] for p, n in zip(parts, rows, strict=True)],
        },
        sort_keys=True,
    )  # fmt: skip


def prepare_sequences(
    parts: list[Location],
    out: Location,
    student: ModelSpec,
    training: TrainingConfig,
    seed: int,
    records_per_chunk: int = RECORDS_PER_CHUNK,
) -> PreparedSequences:
    """Tokenize, mask and pack the selection rows in `parts` (record_id, messages, response) with Ray Data tasks.

    Writes sequence parts (input_ids, labels, position_ids), reject parts and chunk markers under
    `out` (storage every node sees); chunks already marked there with the same settings are kept.
    Ray must be initialized (or Ray Data starts a local Ray). Raises nothing for bad rows: they
    come back as rejects with record_id, field and reason. `records_per_chunk` is the task size
    (tests make it small); packing never crosses a chunk.
    """
    import ray

    rows = [part.parquet_rows() for part in parts]
    settings = _settings(parts, rows, student, training, seed, records_per_chunk)
    settings_file = out / SETTINGS_FILE
    if settings_file.is_file() and settings_file.read_text() != settings:
        out.delete()  # made from other inputs or settings
    out.mkdir()
    if not settings_file.is_file():
        settings_file.write_text(settings)
    done = {
        m.name.removeprefix("done-").removesuffix(".json")
        for m in out.list_files(".json")
        if m.name.startswith("done-")
    }
    chunks = [{"part": index, "start": start, "stop": min(start + records_per_chunk, count)}
              for index, count in enumerate(rows) for start in range(0, count, records_per_chunk)]  # fmt: skip
    todo = [chunk for chunk in chunks if _chunk_name(chunk["part"], chunk["start"]) not in done]
    if todo:
        dataset = ray.data.from_items(todo, override_num_blocks=len(todo)).map_batches(
            _prepare_chunk,
            fn_kwargs={
                "parts": [part.uri for part in parts], "out": out.uri, "student": student.model_dump(mode="json"),
                "max_seq_len": training.max_seq_len, "packing": training.packing, "seed": seed,
            },
            batch_size=1, batch_format="pyarrow",
        )  # fmt: skip
        for _ in dataset.iter_rows():  # one small summary row per chunk; the chunk's data went to `out`
            pass
    return _collect(out, len(chunks), len(chunks) - len(todo))


def _collect(out: Location, chunks: int, resumed: int) -> PreparedSequences:
    """Sum the chunk markers; list the sequence and reject parts in chunk order."""
    counts = dict.fromkeys(COUNT_KEYS, 0)
    markers = out.list_files(".json")
    for marker in markers:
        if marker.name.startswith("done-"):
            summary = json.loads(marker.read_text())
            for key in COUNT_KEYS:
                counts[key] += summary[key]
    files = out.list_files(".parquet")  # sorted by name: chunk order
    sequences = SequenceData.of([f for f in files if f.name.startswith("seq-")])
    if sequences.total != counts["sequences"]:
        raise RuntimeError(
            f"{out}: chunk markers count {counts['sequences']} sequences, the parts hold {sequences.total}"
        )
    rejects = [f for f in files if f.name.startswith("rejects-")]
    return PreparedSequences(sequences, counts, rejects, chunks=chunks, resumed_chunks=resumed)


_TOKENIZERS: dict[str, Any] = {}  # per worker process: Ray reuses workers across tasks


def _tokenizer(student: dict[str, Any]) -> Any:
    from compeffdist.models.registry import load_tokenizer

    key = json.dumps(student, sort_keys=True)
    if key not in _TOKENIZERS:
        _TOKENIZERS[key] = load_tokenizer(ModelSpec.model_validate(student), padding_side="right")
    return _TOKENIZERS[key]


def read_rows(part: Location, start: int, stop: int, columns: list[str]) -> pa.Table:
    """Rows [start, stop) of one Parquet part, reading only the row groups that hold them."""
    with part.fs.open_input_file(part.path) as handle:
        parquet = pq.ParquetFile(handle)
        groups, first, offset = [], None, 0
        for index in range(parquet.metadata.num_row_groups):
            size = parquet.metadata.row_group(index).num_rows
            if offset < stop and offset + size > start:
                groups.append(index)
                first = offset if first is None else first
            offset += size
        table = parquet.read_row_groups(groups, columns=columns)
    return table.slice(start - (first or 0), stop - start)


def _prepare_chunk(
    batch: pa.Table, parts: list[str], out: str, student: dict[str, Any], max_seq_len: int, packing: bool, seed: int
) -> pa.Table:
    """Ray Data task: one chunk's rows -> sequence part, reject part, marker; returns the chunk's counts."""
    from compeffdist.training.examples import build_examples
    from compeffdist.training.packing import pack_sequences, shuffled, single_sequences

    (chunk,) = batch.to_pylist()
    name = _chunk_name(chunk["part"], chunk["start"])
    table = read_rows(Location.of(parts[chunk["part"]]), chunk["start"], chunk["stop"], SELECTION_COLUMNS)
    spec = ModelSpec.model_validate(student)
    examples, rejects = build_examples(table.to_pylist(), _tokenizer(student), max_seq_len, spec.chat_template_kwargs)
    ordered = shuffled(examples, f"{seed}/{name}")
    sequences = pack_sequences(ordered, max_seq_len) if packing else single_sequences(ordered)
    folder = Location.of(out)
    if sequences:
        (folder / f"seq-{name}.parquet").write_parquet(pa.Table.from_pylist(sequences, schema=SEQUENCE_SCHEMA))
    if rejects:
        reject_rows = [{"record_id": r.record_id, "field": r.field, "reason": r.reason, "raw": r.raw} for r in rejects]
        (folder / f"rejects-{name}.parquet").write_parquet(pa.Table.from_pylist(reject_rows, schema=REJECT_SCHEMA))
    summary = {
        "records": table.num_rows, "examples": len(examples), "rejected": len(rejects),
        "truncated": sum(e.truncated for e in examples), "sequences": len(sequences),
        "tokens": sum(len(e.input_ids) for e in examples), "loss_tokens": sum(e.loss_tokens for e in examples),
    }  # fmt: skip
    (folder / f"done-{name}.json").write_text(json.dumps(summary))  # last: the chunk's commit point
    return pa.Table.from_pylist([{"chunk": name, **summary}])


def sequences_dataset(data: SequenceData) -> Any:
    """A Ray Dataset of the sequence parts in order, one block per part, each row with its global ROW_INDEX."""
    import ray.data

    if data.total == 0:
        raise ValueError("no training sequences")
    offsets, total = [], 0
    for count in data.rows:
        offsets.append(total)
        total += count
    items = [{"part": index, "offset": offset} for index, offset in enumerate(offsets)]
    return ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        _read_sequence_part, fn_kwargs={"parts": [part.uri for part in data.parts]}, batch_size=1,
        batch_format="pyarrow", num_cpus=IO_TASK_CPUS,
    )  # fmt: skip


def _read_sequence_part(batch: pa.Table, parts: list[str]) -> pa.Table:
    (item,) = batch.to_pylist()
    table = Location.of(parts[item["part"]]).read_parquet(columns=list(SEQUENCE_COLUMNS))
    start = item["offset"]
    return table.append_column(ROW_INDEX, pa.array(range(start, start + table.num_rows), pa.int64()))
