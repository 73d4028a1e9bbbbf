"""Stage `responses` from files: teacher answers a user already has, in place of asking a teacher.

Each record becomes a `responses` row like the labeling stage's (ids, grouping, the user turn as
text and as messages, the answer): difficulty, selection, training and evaluation then run
unchanged. Files are read record by record and written part by part, so their size never reaches
the driver's memory. A bad row (unreadable, a field missing or empty, a duplicate id) is a reject
naming file, row and field.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa

from compeffdist.chat import user_turn
from compeffdist.config import ImportConfig, JobConfig
from compeffdist.data.answers import read_answer_records
from compeffdist.generation.requests import RESULT_SCHEMA
from compeffdist.idset import IdSet
from compeffdist.labeling import ANALYSIS, RECORD_SCHEMA
from compeffdist.stage import Stage, StageContext, StageOutput

RESPONSE_SCHEMA = pa.schema(list(RECORD_SCHEMA) + list(RESULT_SCHEMA))
ROWS_PER_PART = 4096  # rows buffered in the driver before a part is written: bounded, whatever the file size
INPUT_MARK = "\n\nInput:"


def answer_id(instruction: str, response: str) -> str:
    """An id from the content: the same (instruction, answer) pair gets the same id in every file and run."""
    return hashlib.sha1(f"{instruction}\x1f{response}".encode()).hexdigest()[:16]


def group_of(instruction: str, cluster: Any, task: Any) -> tuple[int, str, str]:
    """(cluster_id, task_name, template_id): the official sampler's groups, analysis records by their prompt."""
    cluster_id = int(cluster) if isinstance(cluster, int | str) and str(cluster).lstrip("-").isdigit() else 0
    task_name = str(task) if task not in (None, "") else ""
    if not task_name or task_name == ANALYSIS:
        prompt = instruction.split(INPUT_MARK)[0].strip()  # a task prompt keeps its demos: still one template
        task_name = task_name or "imported"
        key = f"{cluster_id}|{task_name}|{prompt}"
    else:
        key = f"{cluster_id}|{task_name}"
    return cluster_id, task_name, hashlib.sha1(key.encode()).hexdigest()[:16]


class AnswerRows:
    """Turns raw records into response rows, rejecting bad ones; keeps only ids seen (for duplicates)."""

    def __init__(self, ctx: StageContext, settings: ImportConfig) -> None:
        self.ctx = ctx
        self.settings = settings
        self.seen = IdSet()  # ids of earlier batches: 8 bytes each, whatever the file size
        self.pending: set[str] = set()  # ids of the current batch
        self.kinds: Counter[str] = Counter()

    def row(self, source: str, location: str, record: dict[str, Any] | str) -> dict[str, Any] | None:
        s = self.settings
        if isinstance(record, str):
            self.ctx.reject(source, location, "<row>", record)
            return None
        values: dict[str, str] = {}
        for name in (s.instruction_field, s.response_field):
            value = record.get(name)
            if not isinstance(value, str) or not value.strip():
                problem = "missing" if value is None else ("empty" if isinstance(value, str) else "not text")
                self.ctx.reject(source, location, name, f"field {problem}", record)
                return None
            values[name] = value
        instruction, response = values[s.instruction_field], values[s.response_field]
        record_id = str(record.get(s.id_field)) if s.id_field and record.get(s.id_field) is not None else None
        if s.id_field and record_id is None:
            self.ctx.reject(source, location, s.id_field, "field missing", record)
            return None
        record_id = record_id or answer_id(instruction, response)
        if record_id in self.pending or record_id in self.seen:
            self.ctx.reject(source, location, s.id_field or "<row>", f"duplicate of record {record_id}", record)
            return None
        self.pending.add(record_id)
        if len(self.pending) >= ROWS_PER_PART:
            self.seen.first_seen(self.pending)
            self.pending.clear()
        cluster = record.get(s.cluster_field) if s.cluster_field else None
        cluster_id, task_name, template_id = group_of(
            instruction, cluster, record.get(s.task_field) if s.task_field else None
        )
        kind = ANALYSIS if task_name == ANALYSIS else "imported"
        self.kinds[f"kind_{kind}"] += 1
        return {
            "record_id": record_id,
            "template_id": template_id,
            "cluster_id": cluster_id,
            "kind": kind,
            "task_name": task_name,
            "text_id": None,
            "domain": Path(source).stem,
            "demos_shown": 0,
            "instruction": instruction,
            "messages": user_turn(instruction),
            "response": response,
            "prompt_tokens": None,
            "output_tokens": None,
            "finish_reason": "stop",
            "error": None,
            "error_kind": None,
            "model": s.teacher,
            "attempts": 0,
        }


def import_responses(ctx: StageContext) -> StageOutput:
    """Read every answer file record by record into `responses` parts."""
    from compeffdist.failures import StageFailed

    settings = ctx.config.labeling.imported
    assert settings is not None  # the stage exists only when labeling.imported is set
    fields = [f for f in (settings.instruction_field, settings.response_field, settings.id_field,
                          settings.cluster_field, settings.task_field) if f]  # fmt: skip
    rows = AnswerRows(ctx, settings)
    writer = ctx.part_writer(RESPONSE_SCHEMA, ROWS_PER_PART)
    read = 0
    for source in settings.files:
        before = writer.rows_written
        for location, record in read_answer_records(source.path, fields, source.format):
            read += 1
            row = rows.row(str(source.path), location, record)
            if row is not None:
                writer.add(row)
        writer.flush()
        if writer.rows_written == before:
            ctx.log(f"warning: {source.path} gave no usable answer")
    if writer.rows_written == 0:
        raise StageFailed("no usable teacher answer in labeling.imported.files (see the reasons below)")
    rejected = read - writer.rows_written
    ctx.log(f"{writer.rows_written} answers imported from {len(settings.files)} file(s); {rejected} rejected")
    return StageOutput(
        parts=writer.parts,
        counts={"rows": writer.rows_written, "read": read, "failed": 0, **dict(sorted(rows.kinds.items()))},
        models={"teacher": settings.teacher},
        extra={"imported_from": [str(f.path) for f in settings.files]},
    )


def _answer_files(config: JobConfig) -> list[Path]:
    imported = config.labeling.imported
    return [f.path for f in imported.files] if imported else []


STAGES = [
    Stage(
        name="responses",
        run=import_responses,
        sections=("labeling.imported",),
        external_inputs=_answer_files,
        description="teacher answers imported from files (labeling.imported)",
    )
]
