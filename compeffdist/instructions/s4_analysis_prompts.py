"""Stage `analysis_prompts` (METHOD.md S4 generation + S5 extraction): per perspective, the teacher writes
open-ended analysis prompts from the cluster's attributes; one row per kept prompt."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pyarrow as pa

from compeffdist.instructions import ids, prompts
from compeffdist.instructions.clusters import group_clusters
from compeffdist.instructions.filters import NearDuplicateFilter, drop_counts, keep_items
from compeffdist.instructions.parsers import parse_analysis_prompts
from compeffdist.instructions.schemas import AnalysisPromptList, request_schema
from compeffdist.instructions.teacher import (
    GENERATION_SECTIONS,
    TEACHER_SECTIONS,
    AnswerParser,
    TeacherCall,
    ask_teacher,
    teacher_output,
)
from compeffdist.stage import Stage, StageContext, StageOutput

PROMPT_SCHEMA = pa.schema(
    [
        ("prompt_id", pa.string()),
        ("cluster_id", pa.int64()),
        ("prompt_index", pa.int64()),
        ("prompt", pa.string()),
        ("request_id", pa.string()),
    ]
)
PARSER = AnswerParser(parse_analysis_prompts, "no prompt found")


def generate_analysis_prompts(ctx: StageContext) -> StageOutput:
    """S4+S5: per perspective, the teacher writes open-ended analysis prompts from the cluster's attributes."""
    cfg = ctx.config.instructions
    clusters = group_clusters(ctx.read("perspectives").to_pylist(), cfg.max_clusters)
    schema = request_schema(AnalysisPromptList)
    asked = []
    for cluster in clusters:
        prompt = prompts.analysis_prompt_generation(
            [a.name for a in cluster.attributes],
            [(a.name, a.description) for a in cluster.top(cfg.top_attributes_per_cluster)],
            cfg.analysis_prompts_per_cluster,
            cfg.structured_output,
        )
        asked.append((cluster, TeacherCall(ids.analysis_request(cluster.cluster_id), prompt, schema)))
    answers, stats = ask_teacher(ctx, "analysis_prompts", [c for _, c in asked], cfg.generation_sampling, PARSER)
    unique = NearDuplicateFilter(cfg.near_duplicate_threshold)
    rows: list[dict[str, Any]] = []
    dropped: Counter[str] = Counter()
    for cluster, call in asked:
        answer = answers.get(call.request_id)
        kept, drops = keep_items(answer.items if answer else [], str, str, unique, cfg.analysis_prompts_per_cluster)
        dropped.update(drops)
        rows += [
            {
                "prompt_id": ids.prompt_id(cluster.cluster_id, index),
                "cluster_id": cluster.cluster_id,
                "prompt_index": index,
                "prompt": prompt,
                "request_id": call.request_id,
            }
            for index, prompt in enumerate(kept)
        ]
    return teacher_output(
        ctx,
        rows,
        PROMPT_SCHEMA,
        {
            "clusters": len(clusters),
            "prompts": len(rows),
            **drop_counts("prompts", dropped),
            **stats.counts("teacher"),
        },
        stats.usage,
        cfg.generation_sampling,
    )


STAGE = Stage(
    name="analysis_prompts",
    run=generate_analysis_prompts,
    inputs=("perspectives",),
    sections=(
        *GENERATION_SECTIONS,
        "instructions.max_clusters",
        "instructions.analysis_prompts_per_cluster",
        "instructions.top_attributes_per_cluster",
        *TEACHER_SECTIONS,
    ),
    description="teacher writes analysis prompts per perspective (S4-S5)",
)
