"""Stage `task_ideas` (METHOD.md S6, task ideation): per perspective, the teacher proposes typed tasks on
a single text for the cluster's top attribute; one row per kept idea, under the task id it keeps
through standardization (S7-S8) and templates (S11)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pyarrow as pa

from compeffdist.instructions import ids, prompts
from compeffdist.instructions.clusters import group_clusters
from compeffdist.instructions.filters import NearDuplicateFilter, drop_counts, keep_items
from compeffdist.instructions.parsers import parse_task_ideas
from compeffdist.instructions.schemas import TaskIdea, TaskIdeaList, request_schema
from compeffdist.instructions.teacher import (
    GENERATION_SECTIONS,
    TEACHER_SECTIONS,
    AnswerParser,
    TeacherCall,
    ask_teacher,
    teacher_output,
)
from compeffdist.stage import Stage, StageContext, StageOutput

IDEA_SCHEMA = pa.schema(
    [
        ("task_id", pa.string()),
        ("cluster_id", pa.int64()),
        ("task_index", pa.int64()),
        ("task_name", pa.string()),
        ("task_type", pa.string()),  # as the teacher declared it ("" when it did not)
        ("task_description", pa.string()),
        ("request_id", pa.string()),
    ]
)
PARSER = AnswerParser(parse_task_ideas, "no task idea found")
IDEA_DROP_REASONS = ("over_limit", "two_texts", "near_duplicate")


def _idea_text(idea: TaskIdea) -> str:
    return f"{idea.task_name} {idea.task_description}"


def generate_task_ideas(ctx: StageContext) -> StageOutput:
    """S6: typed task ideas per perspective; two-text, near-duplicate and surplus ideas are dropped and counted."""
    cfg = ctx.config.instructions
    clusters = group_clusters(ctx.read("perspectives").to_pylist(), cfg.max_clusters)
    schema = request_schema(TaskIdeaList, kinds=True)
    asked = []
    for cluster in clusters:
        top = cluster.attributes[0]
        prompt = prompts.task_ideation(top.name, top.description, cfg.tasks_per_cluster, cfg.structured_output)
        asked.append((cluster, TeacherCall(ids.ideas_request(cluster.cluster_id), prompt, schema)))
    answers, stats = ask_teacher(ctx, "task_ideas", [c for _, c in asked], cfg.generation_sampling, PARSER)
    rows: list[dict[str, Any]] = []
    dropped: Counter[str] = Counter()
    for cluster, call in asked:
        answer = answers.get(call.request_id)
        unique = NearDuplicateFilter(cfg.near_duplicate_threshold)
        kept, drops = keep_items(answer.items if answer else [], _idea_text, _idea_text, unique, cfg.tasks_per_cluster)
        dropped.update(drops)
        rows += [
            {
                "task_id": ids.task_id(cluster.cluster_id, index),
                "cluster_id": cluster.cluster_id,
                "task_index": index,
                **idea.model_dump(),
                "request_id": call.request_id,
            }
            for index, idea in enumerate(kept)
        ]
    return teacher_output(
        ctx,
        rows,
        IDEA_SCHEMA,
        {
            "clusters": len(clusters),
            "ideas": len(rows),
            **drop_counts("ideas", dropped, IDEA_DROP_REASONS),
            **stats.counts("ideas"),
        },
        stats.usage,
        cfg.generation_sampling,
    )


STAGE = Stage(
    name="task_ideas",
    run=generate_task_ideas,
    inputs=("perspectives",),
    sections=(*GENERATION_SECTIONS, "instructions.max_clusters", "instructions.tasks_per_cluster", *TEACHER_SECTIONS),
    description="teacher proposes typed tasks on a single text per perspective (S6)",
)
