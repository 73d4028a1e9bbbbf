"""Stage `tasks` (METHOD.md S7 standardization + S8 extraction): each task idea is rewritten by the teacher
into a standardized task with an exact output format and seed demos; one row per kept task.

An idea whose standardization never parses has no output format and no demos: it is dropped and
rejected, unless instructions.keep_unstandardized_tasks keeps it as the teacher stated it
(`standardized` false). Tasks that involve two texts are dropped.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pyarrow as pa

from compeffdist.instructions import ids, prompts
from compeffdist.instructions.filters import (
    NearDuplicateFilter,
    clean_demos,
    drop_counts,
    mentions_two_texts,
    task_kind,
)
from compeffdist.instructions.parsers import parse_standardized_task
from compeffdist.instructions.schemas import DEMOS_TYPE, IDEA_TYPE, StandardizedTask, request_schema
from compeffdist.instructions.teacher import (
    GENERATION_SECTIONS,
    TEACHER_SECTIONS,
    AnswerParser,
    TeacherCall,
    ask_teacher,
    teacher_output,
)
from compeffdist.stage import Stage, StageContext, StageOutput

TASK_SCHEMA = pa.schema(
    [
        ("task_id", pa.string()),
        ("cluster_id", pa.int64()),
        ("task_index", pa.int64()),
        ("kind", pa.string()),
        ("task_name", pa.string()),
        ("task_description", pa.string()),
        ("seed_demos", DEMOS_TYPE),
        ("standardized", pa.bool_()),
        ("idea", IDEA_TYPE),  # the S6 idea it was made from
        ("request_id", pa.string()),  # the answer its content comes from (the idea's, if never standardized)
    ]
)
PARSER = AnswerParser(parse_standardized_task, "no task name and description found")
MIN_EXAMPLES_ASKED = 8  # the official S7 prompt asks for at least eight examples


def standardize_tasks(ctx: StageContext) -> StageOutput:
    """S7+S8: each idea standardized with an output format and seed demos (cleaned like every demo)."""
    cfg = ctx.config.instructions
    ideas = sorted(ctx.read("task_ideas").to_pylist(), key=lambda r: (r["cluster_id"], r["task_index"]))
    schema = request_schema(StandardizedTask, kinds=True)
    examples_asked = max(cfg.seed_demos_per_task + 1, MIN_EXAMPLES_ASKED)
    asked = []
    for idea in ideas:
        prompt = prompts.task_standardization(
            idea["task_name"], idea["task_type"], idea["task_description"], examples_asked, cfg.structured_output
        )
        asked.append((idea, TeacherCall(ids.standardize_request(idea["task_id"]), prompt, schema)))
    answers, stats = ask_teacher(ctx, "task_standardization", [c for _, c in asked], cfg.generation_sampling, PARSER)
    rows: list[dict[str, Any]] = []
    task_drops: Counter[str] = Counter()
    seed_drops: Counter[str] = Counter()
    for idea, call in asked:
        answer = answers.get(call.request_id)
        task: StandardizedTask | None = answer.items[0] if answer else None
        stated = {key: idea[key] for key in IDEA_TYPE.names}
        if task is None and not cfg.keep_unstandardized_tasks:
            # The standardization answer itself is already rejected by ask_teacher; this records the task's fate.
            task_drops["unstandardized"] += 1
            ctx.reject(
                "teacher",
                idea["task_id"],
                "task",
                "task never standardized: dropped",
                json.dumps(stated, ensure_ascii=False, sort_keys=True),
            )
            continue
        name = task.task_name if task else idea["task_name"]
        description = task.task_description if task else idea["task_description"]
        if mentions_two_texts(f"{name} {description}"):
            task_drops["two_texts"] += 1
            ctx.reject("teacher", call.request_id, "task", "task involves two texts", description)
            continue
        examples = [d.model_dump() for d in task.examples] if task else []
        demos, dropped = clean_demos(
            examples, NearDuplicateFilter(cfg.near_duplicate_threshold), cfg.seed_demos_per_task
        )
        seed_drops.update(dropped)
        rows.append(
            {
                "task_id": idea["task_id"],
                "cluster_id": idea["cluster_id"],
                "task_index": idea["task_index"],
                "kind": task_kind((task.task_type if task else "") or idea["task_type"], name, description),
                "task_name": name,
                "task_description": description,
                "seed_demos": demos,
                "standardized": task is not None,
                "idea": stated,
                "request_id": call.request_id if task else idea["request_id"],
            }
        )
    return teacher_output(
        ctx,
        rows,
        TASK_SCHEMA,
        {
            "ideas": len(ideas),
            "tasks": len(rows),
            "tasks_kept_unstandardized": sum(not r["standardized"] for r in rows),
            **drop_counts("tasks", task_drops, ("unstandardized", "two_texts")),
            **drop_counts("seed_demos", seed_drops),
            **stats.counts("standardize"),
        },
        stats.usage,
        cfg.generation_sampling,
    )


STAGE = Stage(
    name="tasks",
    run=standardize_tasks,
    inputs=("task_ideas",),
    sections=(
        *GENERATION_SECTIONS,
        "instructions.seed_demos_per_task",
        "instructions.keep_unstandardized_tasks",
        *TEACHER_SECTIONS,
    ),
    description="teacher standardizes each task idea with an output format and seed demos (S7-S8)",
)
