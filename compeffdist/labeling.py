"""Stages `records` and `responses`: pair user texts with instruction templates, then ask the teacher.

Pairing policy (METHOD.md G2, made explicit): each record first draws its kind (analysis with
probability `analysis_ratio`, else a task), then a cluster uniformly among clusters that have
templates of that kind, then a template uniformly within the cluster, then the next unused text
of a seeded shuffle. A (template, text) pair is never repeated; record ids hash the pair.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from typing import Any

import pyarrow as pa

from compeffdist.artifacts import ROWS_PER_PART
from compeffdist.config import EngineConfig, SamplingConfig
from compeffdist.engines.base import GenerationRequest
from compeffdist.stage import Stage, StageContext, StageOutput

ANALYSIS = "analysis"
BLOCKS_PER_ACTOR = 8
# Guided decoding for structured-output tasks: any JSON object or array.
STRUCTURED_SCHEMA = {"anyOf": [{"type": "object"}, {"type": "array"}]}


def record_id(template_id: str, text_id: str) -> str:
    return hashlib.sha1(f"{template_id}|{text_id}".encode()).hexdigest()[:16]


def format_instruction(template: dict[str, Any], text: str, demos: list[dict[str, str]]) -> str:
    """The user turn: the official layout "<prompt>\\n\\nInput: <text>", with demos for task prompts."""
    if template["kind"] == ANALYSIS:
        return f"{template['task_description']}\n\nInput: {text}"
    blocks = [template["task_description"].strip()]
    blocks += [f"Input: {d['input']}\nOutput: {d['output']}" for d in demos]
    blocks.append(f"Input: {text}\nOutput:")
    return "\n\n".join(blocks)


def _parse_demos(raw: str | None) -> list[dict[str, str]]:
    try:
        demos = json.loads(raw or "[]")
    except json.JSONDecodeError:
        return []
    return [d for d in demos if isinstance(d, dict) and isinstance(d.get("input"), str) and "output" in d]


def build_records(ctx: StageContext) -> StageOutput:
    """Draw `labeling.records` unique (template, text) pairs under the policy in the module doc."""
    cfg = ctx.config.labeling
    templates = ctx.read("templates").to_pylist()
    texts = ctx.read("pool", columns=["text_id", "domain", "text"]).to_pylist()
    if not templates:
        raise RuntimeError("no instruction templates: the templates stage produced nothing to label with")
    rng = random.Random(ctx.config.run.seed)
    by_group: dict[str, dict[int, list[dict[str, Any]]]] = {"analysis": defaultdict(list), "task": defaultdict(list)}
    for template in sorted(templates, key=lambda t: t["template_id"]):
        group = "analysis" if template["kind"] == ANALYSIS else "task"
        by_group[group][template["cluster_id"]].append(template)
    available = [g for g in ("analysis", "task") if by_group[g]]
    capacity = len(templates) * len(texts)
    wanted = min(cfg.records, capacity)
    if wanted < cfg.records:
        ctx.log(f"only {capacity} distinct (template, text) pairs exist; building {wanted} records")

    order = sorted(texts, key=lambda t: t["text_id"])
    rng.shuffle(order)
    cursor: dict[str, int] = defaultdict(int)  # per template: next position in the text order
    rows, seen = [], set()
    attempts = 0
    while len(rows) < wanted and attempts < wanted * 20:
        attempts += 1
        group = available[0]
        if len(available) == 2 and rng.random() >= cfg.analysis_ratio:
            group = "task"
        cluster = rng.choice(sorted(by_group[group]))
        template = rng.choice(by_group[group][cluster])
        position = cursor[template["template_id"]]
        if position >= len(order):
            continue  # this template has been paired with every text
        cursor[template["template_id"]] += 1
        text = order[(position + hash_offset(template["template_id"], len(order))) % len(order)]
        rid = record_id(template["template_id"], text["text_id"])
        if rid in seen:
            continue
        seen.add(rid)
        demos = _parse_demos(template.get("demos"))
        shown = rng.sample(demos, min(cfg.demos_shown, len(demos))) if template["kind"] != ANALYSIS else []
        instruction = format_instruction(template, text["text"], shown)
        rows.append(
            {
                "record_id": rid,
                "template_id": template["template_id"],
                "cluster_id": int(template["cluster_id"]),
                "kind": template["kind"],
                "task_name": template["task_name"],
                "text_id": text["text_id"],
                "domain": text["domain"],
                "demos_shown": len(shown),
                "instruction": instruction,
            }
        )
    kinds: dict[str, int] = defaultdict(int)
    for row in rows:
        kinds[f"kind_{row['kind']}"] += 1
    return StageOutput(
        table=pa.Table.from_pylist(rows),
        rows_per_part=rows_per_part(len(rows), ctx.config.engines.teacher),
        counts={"records": len(rows), **kinds},
    )


def rows_per_part(records: int, teacher: EngineConfig) -> int:
    """Rows per records file: about BLOCKS_PER_ACTOR files per teacher actor, never less than one batch.

    The teacher stage reads records lazily, one Ray Data block per file (rowmap); a block goes to one
    actor, and its progress reaches the driver when the block is done. One big file would mean one
    actor and no progress until the end.
    """
    wanted = -(-records // (teacher.max_actors * BLOCKS_PER_ACTOR))
    return min(max(wanted, teacher.batch_size), ROWS_PER_PART)


def hash_offset(template_id: str, modulo: int) -> int:
    """Start each template at a different place in the text order, so templates see different texts."""
    return int(hashlib.sha1(template_id.encode()).hexdigest()[:8], 16) % max(modulo, 1)


class LabelingWorker:
    """Actor-side: turn record rows into teacher requests, generate, return records + response columns."""

    def __init__(self, model: dict[str, Any], engine: dict[str, Any], seed: int, sampling: dict[str, Any]) -> None:
        from compeffdist.rowmap import GenerationWorker

        self.generator = GenerationWorker(model, engine, seed)
        self.sampling = SamplingConfig.model_validate(sampling)

    def __call__(self, batch: pa.Table) -> pa.Table:
        requests = [
            GenerationRequest(
                request_id=row["record_id"],
                messages=[{"role": "user", "content": row["instruction"]}],
                sampling=self.sampling,
                json_schema=STRUCTURED_SCHEMA if row["kind"] == "structured" else None,
            ).to_row()
            for row in batch.select(["record_id", "instruction", "kind"]).to_pylist()
        ]
        request_table = pa.Table.from_pylist(requests).drop_columns(["request_id"])
        for name in batch.column_names:
            request_table = request_table.append_column(name, batch.column(name))
        return self.generator(request_table.append_column("request_id", batch.column("record_id"))).drop_columns(
            ["request_id"]
        )


def teacher_responses(ctx: StageContext) -> StageOutput:
    """Stream every record through the teacher; failures stay in the table (error set) and in rejects.

    Records are read lazily from the `records` artifact and results are published shard by shard,
    so neither the input nor the output passes through the driver's memory.
    """
    from compeffdist.rowmap import publish_shards, run_sharded_map, token_usage

    cfg = ctx.config
    worker_kwargs = {
        "model": cfg.models.teacher.model_dump(mode="json"),
        "engine": cfg.engines.teacher.model_dump(mode="json"),
        "seed": cfg.run.seed,
        "sampling": cfg.labeling.sampling.model_dump(mode="json"),
    }
    shard_dir, stats = run_sharded_map(
        ctx, ctx.input_parts("records"), LabelingWorker, worker_kwargs, cfg.engines.teacher, "record_id", "teacher"
    )
    usage: dict[str, dict[str, int]] = {}
    rows = failed = 0

    def account(part: pa.Table) -> None:
        nonlocal rows, failed
        rows += part.num_rows
        token_usage(part, into=usage)
        for row in part.select(["record_id", "error"]).to_pylist():
            if row["error"]:
                failed += 1
                ctx.reject("teacher", row["record_id"], "response", row["error"])

    parts = publish_shards(shard_dir, "record_id", ctx.work / "parts", on_part=account)
    engine = cfg.engines.teacher
    return StageOutput(
        parts=parts,
        counts={"rows": rows, "failed": failed, "resumed": stats.resumed},
        models={"teacher": cfg.models.teacher.name},
        token_usage=usage,
        extra={
            "sampling": cfg.labeling.sampling.model_dump(),
            "backend": engine.backend,
            "map_wall_seconds": round(stats.wall_seconds, 2),
        },
    )


STAGES = [
    Stage(
        name="records",
        run=build_records,
        inputs=("pool", "templates"),
        sections=("labeling.records", "labeling.analysis_ratio", "labeling.demos_shown", "run.seed"),
        description="pair user texts with instruction templates",
    ),
    Stage(
        name="responses",
        run=teacher_responses,
        inputs=("records",),
        sections=("labeling.sampling", "models.teacher", "engines.teacher", "run.seed"),
        description="teacher responses for every record (Ray Data actor pool)",
    ),
]
