"""Stage `demos` (METHOD.md S9 generation + S10 extraction): per task, requests that show seed demos and
real reference texts; the teacher writes new instances in the references' style. One row per kept
pair, joined to its task and request by ids (the official S10 aligned answers by position)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pyarrow as pa

from compeffdist.instructions import ids, prompts
from compeffdist.instructions.filters import DROP_REASONS, NearDuplicateFilter, clean_demos, drop_counts
from compeffdist.instructions.parsers import parse_demo_pairs
from compeffdist.instructions.schemas import DemoList, request_schema
from compeffdist.instructions.seeds import seeded_random
from compeffdist.instructions.teacher import (
    GENERATION_SECTIONS,
    TEACHER_SECTIONS,
    AnswerParser,
    TeacherCall,
    ask_teacher,
    teacher_output,
)
from compeffdist.stage import Stage, StageContext, StageOutput

DEMO_SCHEMA = pa.schema(
    [
        ("demo_id", pa.string()),
        ("task_id", pa.string()),
        ("cluster_id", pa.int64()),
        ("request_id", pa.string()),
        ("request_index", pa.int64()),  # k: the task's k-th demo request
        ("pair_index", pa.int64()),  # j: the pair's place in that answer; (task, k, j) orders a task's demos
        ("input", pa.string()),
        ("output", pa.string()),
        ("reference_text_ids", pa.list_(pa.string())),
    ]
)
PARSER = AnswerParser(parse_demo_pairs, "no Input/Output pair found")
REFERENCES_PER_DEMO_REQUEST = 2
SEED_DEMOS_SHOWN = 2
PAIRS_PER_DEMO_RESPONSE = 2


def generate_demos(ctx: StageContext) -> StageOutput:
    """S9+S10: new task instances grounded in real texts. Pairs that mention reference texts or two texts,
    near-duplicates (of seed demos too) and pairs past the per-task limit are dropped and counted."""
    cfg = ctx.config.instructions
    seed = ctx.config.run.seed
    tasks = sorted(ctx.read("tasks").to_pylist(), key=lambda t: t["task_id"])
    references = sorted(ctx.read("pool", columns=["text_id", "text"]).to_pylist(), key=lambda r: r["text_id"])
    schema = request_schema(DemoList)
    asked: dict[str, list[tuple[int, list[str], TeacherCall]]] = {}  # task_id -> (k, reference ids, call)
    for task in tasks:
        for k in range(cfg.demo_requests_per_task):
            rng = seeded_random(seed, "demos", task["task_id"], k)
            shown = rng.sample(task["seed_demos"], min(SEED_DEMOS_SHOWN, len(task["seed_demos"])))
            refs = rng.sample(references, min(REFERENCES_PER_DEMO_REQUEST, len(references)))
            prompt = prompts.demo_generation(
                task["task_name"], task["task_description"], shown, [r["text"] for r in refs], cfg.structured_output
            )
            call = TeacherCall(ids.demo_request(task["task_id"], k), prompt, schema)
            asked.setdefault(task["task_id"], []).append((k, [r["text_id"] for r in refs], call))
    calls = [call for requests in asked.values() for _, _, call in requests]
    answers, stats = ask_teacher(ctx, "demos", calls, cfg.generation_sampling, PARSER)
    rows: list[dict[str, Any]] = []
    dropped: Counter[str] = Counter()
    for task in tasks:
        unique = NearDuplicateFilter(cfg.near_duplicate_threshold)
        for demo in task["seed_demos"]:
            unique.accept(demo["input"])
        kept_for_task = 0
        for k, reference_ids, call in asked.get(task["task_id"], []):
            answer = answers.get(call.request_id)
            pairs = [d.model_dump() for d in answer.items] if answer else []
            dropped["extra_pairs"] += max(len(pairs) - PAIRS_PER_DEMO_RESPONSE, 0)  # the request asked for two
            room = cfg.max_generated_demos_per_task - kept_for_task
            kept, lost = clean_demos(pairs[:PAIRS_PER_DEMO_RESPONSE], unique, max(room, 0))
            dropped.update(lost)
            rows += [
                {
                    "demo_id": ids.demo_id(task["task_id"], k, j),
                    "task_id": task["task_id"],
                    "cluster_id": task["cluster_id"],
                    "request_id": call.request_id,
                    "request_index": k,
                    "pair_index": j,
                    "input": demo["input"],
                    "output": demo["output"],
                    "reference_text_ids": reference_ids,
                }
                for j, demo in enumerate(kept)
            ]
            kept_for_task += len(kept)
    return teacher_output(
        ctx,
        rows,
        DEMO_SCHEMA,
        {
            "tasks": len(tasks),
            "demos": len(rows),
            **drop_counts("demos", dropped, (*DROP_REASONS, "extra_pairs")),
            **stats.counts("teacher"),
        },
        stats.usage,
        cfg.generation_sampling,
    )


STAGE = Stage(
    name="demos",
    run=generate_demos,
    inputs=("tasks", "pool"),
    sections=(
        *GENERATION_SECTIONS,
        "instructions.demo_requests_per_task",
        "instructions.max_generated_demos_per_task",
        *TEACHER_SECTIONS,
    ),
    description="teacher writes task demos grounded in real reference texts (S9-S10)",
)
