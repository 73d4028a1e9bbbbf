"""Stage `attributes` (METHOD.md S1 enumeration + S2 parsing): the teacher lists the sentiment-related
attributes of sampled user texts; one row per parsed attribute mention."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from compeffdist.instructions import ids, prompts
from compeffdist.instructions.parsers import parse_attributes
from compeffdist.instructions.schemas import AttributeList, request_schema
from compeffdist.instructions.seeds import seeded_random
from compeffdist.instructions.teacher import (
    TEACHER_SECTIONS,
    AnswerParser,
    TeacherCall,
    ask_teacher,
    teacher_output,
)
from compeffdist.stage import Stage, StageContext, StageOutput

MENTION_SCHEMA = pa.schema(
    [
        ("text_id", pa.string()),
        ("domain", pa.string()),
        ("request_id", pa.string()),
        ("item_index", pa.int64()),
        ("raw_name", pa.string()),
        ("description", pa.string()),
        ("value", pa.string()),
        ("parse_method", pa.string()),
    ]
)
PARSER = AnswerParser(parse_attributes, "no attribute found")


def sample_texts(pool: list[dict[str, Any]], wanted: int, seed: int) -> list[dict[str, Any]]:
    """Up to `wanted` texts spread evenly over domains (round-robin over sorted domains, seeded order within)."""
    by_domain: dict[str, list[dict[str, Any]]] = {}
    for row in sorted(pool, key=lambda r: r["text_id"]):
        by_domain.setdefault(row["domain"], []).append(row)
    for domain in sorted(by_domain):
        seeded_random(seed, "attributes", domain).shuffle(by_domain[domain])
    chosen: list[dict[str, Any]] = []
    queues = [by_domain[d] for d in sorted(by_domain)]
    while len(chosen) < wanted and any(queues):
        for queue in queues:
            if queue and len(chosen) < wanted:
                chosen.append(queue.pop(0))
    return chosen


def enumerate_attributes(ctx: StageContext) -> StageOutput:
    """S1+S2: the teacher lists each sampled text's sentiment-related attributes; one row per parsed mention."""
    cfg = ctx.config.instructions
    pool = ctx.read("pool", columns=["text_id", "domain", "text"]).to_pylist()
    texts = sample_texts(pool, cfg.texts_for_attributes, ctx.config.run.seed)
    schema = request_schema(AttributeList)
    asked = []
    for text in texts:
        prompt = prompts.attribute_enumeration(text["text"], cfg.structured_output)
        asked.append((text, TeacherCall(ids.attributes_request(text["text_id"]), prompt, schema)))
    answers, stats = ask_teacher(ctx, "attributes", [call for _, call in asked], cfg.enumeration_sampling, PARSER)
    rows = []
    for text, call in asked:
        answer = answers.get(call.request_id)
        for index, item in enumerate(answer.items if answer else []):
            rows.append(
                {
                    "text_id": text["text_id"],
                    "domain": text["domain"],
                    "request_id": call.request_id,
                    "item_index": index,
                    "raw_name": item.name,
                    "description": item.description,
                    "value": item.value,
                    "parse_method": answer.method,
                }
            )
    domains = sorted({t["domain"] for t in texts})
    ctx.log(f"{len(rows)} attribute mentions from {stats.parsed} of {len(texts)} texts ({len(domains)} domains)")
    counts = {"texts": len(texts), "mentions": len(rows), **stats.counts("teacher")}
    return teacher_output(ctx, rows, MENTION_SCHEMA, counts, stats.usage, cfg.enumeration_sampling, domains=domains)


STAGE = Stage(
    name="attributes",
    run=enumerate_attributes,
    inputs=("pool",),
    sections=("instructions.texts_for_attributes", "instructions.enumeration_sampling", *TEACHER_SECTIONS),
    description="teacher enumerates sentiment-related attributes of sampled user texts (S1-S2)",
)
