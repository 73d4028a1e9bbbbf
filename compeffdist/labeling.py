"""Stages `records` and `responses`: pair user texts with instruction templates, then ask the teacher.

Pairing policy (METHOD.md G2, made explicit): each record first draws its kind (analysis with
probability `analysis_ratio`, else a task), then a cluster uniformly among clusters that have
templates of that kind, then a template uniformly within the cluster, then the template's next text
in a seeded order of the pool (each template walks the whole pool from its own offset, so a
(template, text) pair is never repeated). Record ids hash the pair.

Both stages move records part by part: `records` writes a Parquet part every `rows_per_part` rows
(never the whole set in the driver), and `responses` streams those parts through the teacher pool.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter, defaultdict
from functools import partial
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from compeffdist.artifacts import ROWS_PER_PART
from compeffdist.chat import MESSAGES_TYPE, user_turn
from compeffdist.config import EngineConfig, SamplingConfig
from compeffdist.stage import Stage, StageContext, StageOutput

ANALYSIS = "analysis"
BLOCKS_PER_ACTOR = 8
# Guided decoding for structured-output tasks: any JSON object or array.
STRUCTURED_SCHEMA = json.dumps({"anyOf": [{"type": "object"}, {"type": "array"}]})
RECORD_SCHEMA = pa.schema(
    [
        ("record_id", pa.string()),
        ("template_id", pa.string()),
        ("cluster_id", pa.int64()),
        ("kind", pa.string()),
        ("task_name", pa.string()),
        ("text_id", pa.string()),
        ("domain", pa.string()),
        ("demos_shown", pa.int64()),
        ("instruction", pa.string()),  # the user turn as text (the official raw scoring layout reads it)
        ("messages", MESSAGES_TYPE),  # the same turn as the conversation every later stage renders
    ]
)


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


def _template_demos(template: dict[str, Any]) -> list[dict[str, str]]:
    """A template's demos, read from its typed `demos` column (list of {input, output} structs)."""
    return [{"input": d["input"], "output": d["output"]} for d in template.get("demos") or []]


def build_records(ctx: StageContext) -> StageOutput:
    """Draw `labeling.records` unique (template, text) pairs under the policy in the module doc, part by part."""
    cfg = ctx.config.labeling
    templates = ctx.read("templates").to_pylist()
    texts = ctx.read("pool", columns=["text_id", "domain", "text"])
    if not templates:
        from compeffdist.failures import StageFailed

        raise StageFailed("no instruction templates: the templates stage produced nothing to label with")
    rng = random.Random(ctx.config.run.seed)
    by_group: dict[str, dict[int, list[dict[str, Any]]]] = {"analysis": defaultdict(list), "task": defaultdict(list)}
    for template in sorted(templates, key=lambda t: t["template_id"]):
        template["parsed_demos"] = _template_demos(template)
        group = "analysis" if template["kind"] == ANALYSIS else "task"
        by_group[group][template["cluster_id"]].append(template)
    available = [g for g in ("analysis", "task") if by_group[g]]
    capacity = len(templates) * texts.num_rows
    wanted = min(cfg.records, capacity)
    if wanted < cfg.records:
        ctx.log(f"only {capacity} distinct (template, text) pairs exist; building {wanted} records")

    # A seeded order of the pool (by position in the text_id-sorted table): Arrow columns, not row dicts.
    texts = texts.sort_by("text_id")
    order = list(range(texts.num_rows))
    rng.shuffle(order)
    text_ids, domains, bodies = (texts.column(name) for name in ("text_id", "domain", "text"))
    cursor: dict[str, int] = defaultdict(int)  # per template: next position in its walk of the pool
    writer = ctx.part_writer(RECORD_SCHEMA, rows_per_part(wanted, ctx.config.engines.teacher))
    kinds: Counter[str] = Counter()
    made = attempts = 0
    while made < wanted and attempts < wanted * 20:
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
        index = order[(position + hash_offset(template["template_id"], len(order))) % len(order)]
        demos = template["parsed_demos"]
        shown = rng.sample(demos, min(cfg.demos_shown, len(demos))) if template["kind"] != ANALYSIS else []
        instruction = format_instruction(template, bodies[index].as_py(), shown)
        tid = text_ids[index].as_py()
        writer.add(
            {
                "record_id": record_id(template["template_id"], tid),
                "template_id": template["template_id"],
                "cluster_id": int(template["cluster_id"]),
                "kind": template["kind"],
                "task_name": template["task_name"],
                "text_id": tid,
                "domain": domains[index].as_py(),
                "demos_shown": len(shown),
                "instruction": instruction,
                "messages": user_turn(instruction),
            }
        )
        kinds[f"kind_{template['kind']}"] += 1
        made += 1
    writer.flush()
    return StageOutput(parts=writer.parts, counts={"rows": made, "records": made, **dict(sorted(kinds.items()))})


def rows_per_part(records: int, teacher: EngineConfig) -> int:
    """Rows per records file: about BLOCKS_PER_ACTOR files per teacher actor, never less than one batch.

    The teacher stage reads records lazily, one Ray Data block per file (rowmap); a block goes to one
    actor, and its progress reaches the driver when the block is done. One big file would mean one
    actor and no progress until the end.
    """
    wanted = -(-records // (teacher.resources.max_actors * BLOCKS_PER_ACTOR))
    return min(max(wanted, teacher.resources.batch_size), ROWS_PER_PART)


def hash_offset(template_id: str, modulo: int) -> int:
    """Start each template at a different place in the text order, so templates see different texts."""
    return int(hashlib.sha1(template_id.encode()).hexdigest()[:8], 16) % max(modulo, 1)


def request_columns(batch: pa.Table, sampling: dict[str, Any]) -> pa.Table:
    """Record rows plus the request columns the generation path reads (the record's messages are the request)."""
    settings = SamplingConfig.model_validate(sampling)
    n = batch.num_rows
    structured = [kind == "structured" for kind in batch.column("kind").to_pylist()]
    columns = {
        "prompt": pa.nulls(n, pa.string()),
        "max_tokens": pa.array([settings.max_tokens] * n, pa.int64()),
        "temperature": pa.array([settings.temperature] * n, pa.float64()),
        "top_p": pa.array([settings.top_p] * n, pa.float64()),
        "seed": pa.array([settings.seed] * n, pa.int64()),
        "json_schema": pa.array([STRUCTURED_SCHEMA if s else None for s in structured], pa.string()),
    }
    for name, column in columns.items():
        batch = batch.append_column(name, column)
    return batch


REQUEST_ONLY = ("prompt", "max_tokens", "temperature", "top_p", "seed", "json_schema")


def teacher_responses(ctx: StageContext) -> StageOutput:
    """Stream every record through the teacher; failures stay in the table (error set) and in rejects.

    Records are read lazily from the `records` artifact and results are published shard by shard,
    so neither the input nor the output passes through the driver's memory.
    """
    from compeffdist.generation.run import generate_stream
    from compeffdist.generation.usage import add_usage
    from compeffdist.rowmap import publish_shards

    cfg = ctx.config
    to_requests = partial(request_columns, sampling=cfg.labeling.sampling.model_dump(mode="json"))
    shard_dir, stats = generate_stream(
        ctx, ctx.input_parts("records"), to_requests, cfg.models.teacher, cfg.engines.teacher, "record_id", "teacher"
    )
    usage: dict[str, dict[str, int]] = {}
    rows = failed = 0

    def account(part: pa.Table) -> None:
        nonlocal rows, failed
        rows += part.num_rows
        add_usage(usage, part)
        errors = part.filter(pc.invert(pc.is_null(part.column("error"))))
        for row in errors.select(["record_id", "error_kind", "error"]).to_pylist():
            failed += 1
            ctx.reject("teacher", row["record_id"], "response", f"{row['error_kind']}: {row['error']}")

    parts = publish_shards(shard_dir, "record_id", ctx.work / "parts", on_part=account, drop=REQUEST_ONLY)
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
            "steady_output_tokens_per_second": stats.steady_tokens_per_second,
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
        description="teacher responses for every record (Ray Data; vLLM through ray.data.llm)",
    ),
]
