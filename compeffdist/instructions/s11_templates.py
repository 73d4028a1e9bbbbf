"""Stage `templates` (METHOD.md S11, final instruction collection): analysis prompts and typed tasks with
their demos, joined by ids into the instruction templates labeling pairs with user texts; also
writes the instruction-construction report."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pyarrow as pa

from compeffdist.failures import StageFailed
from compeffdist.instructions import ids
from compeffdist.instructions.clusters import group_clusters
from compeffdist.instructions.filters import NearDuplicateFilter, clean_demos, drop_counts
from compeffdist.instructions.schemas import DEMOS_TYPE
from compeffdist.stage import Stage, StageContext, StageOutput

TEMPLATE_SCHEMA = pa.schema(
    [
        ("template_id", pa.string()),  # from (cluster_id, kind, source_id): stable when demos are regenerated
        ("cluster_id", pa.int64()),
        ("kind", pa.string()),
        ("source_id", pa.string()),  # the analysis prompt_id or the task_id it was made from
        ("task_name", pa.string()),
        ("task_description", pa.string()),
        ("demos", DEMOS_TYPE),
        ("perspective", pa.string()),
        ("content_hash", pa.string()),  # changes whenever the text or the demos do
    ]
)
# The teacher stages whose manifests the report reads.
REPORTED_STAGES = ("attributes", "analysis_prompts", "task_ideas", "tasks", "demos")


def assemble_templates(
    clusters: dict[int, str],
    analysis_rows: list[dict[str, Any]],
    task_rows: list[dict[str, Any]],
    demo_rows: list[dict[str, Any]],
    near_duplicate_threshold: float,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Typed templates from prompts, tasks and demos, joined by ids only; returns (templates, drop counts).

    A task's demos are its seed demos, then its generated demos in (request, pair) order, through the
    same filter as everywhere (clean_demos). Templates of clusters not in `clusters`, (near-)duplicate
    templates, and demos of unknown tasks are dropped and counted under their own names.
    """
    task_ids = {row["task_id"] for row in task_rows}
    demos_by_task: dict[str, list[dict[str, str]]] = {}
    orphan_demos = 0
    for demo in sorted(demo_rows, key=lambda d: (d["task_id"], d["request_index"], d["pair_index"])):
        if demo["task_id"] not in task_ids:
            orphan_demos += 1
            continue
        demos_by_task.setdefault(demo["task_id"], []).append({"input": demo["input"], "output": demo["output"]})
    unique = NearDuplicateFilter(near_duplicate_threshold)
    templates: list[dict[str, Any]] = []
    dropped: Counter[str] = Counter()
    demo_drops: Counter[str] = Counter()

    def add(cluster_id: int, kind: str, source_id: str, name: str, description: str, demos: list[dict]) -> None:
        if cluster_id not in clusters:
            dropped["unknown_cluster"] += 1
        elif not unique.accept(f"{kind} {description}"):
            dropped["near_duplicate"] += 1
        else:
            templates.append(
                {
                    "template_id": ids.template_id(cluster_id, kind, source_id),
                    "cluster_id": cluster_id,
                    "kind": kind,
                    "source_id": source_id,
                    "task_name": name,
                    "task_description": description,
                    "demos": demos,
                    "perspective": clusters[cluster_id],
                    "content_hash": ids.content_hash(cluster_id, kind, name, description, demos),
                }
            )

    for row in sorted(analysis_rows, key=lambda r: (r["cluster_id"], r["prompt_index"])):
        add(row["cluster_id"], "analysis", row["prompt_id"], "analysis", row["prompt"], [])
    for row in sorted(task_rows, key=lambda r: (r["cluster_id"], r["task_index"])):
        candidates = [*row["seed_demos"], *demos_by_task.get(row["task_id"], [])]
        demos, lost = clean_demos(candidates, NearDuplicateFilter(near_duplicate_threshold))
        demo_drops.update(lost)
        add(row["cluster_id"], row["kind"], row["task_id"], row["task_name"], row["task_description"], demos)
    counts = {
        **drop_counts("templates", dropped, ("unknown_cluster", "near_duplicate")),
        **drop_counts("template_demos", demo_drops, ("two_texts", "reference_text", "near_duplicate")),
        "demos_of_unknown_tasks": orphan_demos,
    }
    return templates, counts


def build_templates(ctx: StageContext) -> StageOutput:
    """S11: assemble analysis and typed task templates; write the instruction-construction report."""
    from compeffdist.instructions.report import plot_cluster_sizes, write_report

    cfg = ctx.config.instructions
    perspectives = ctx.read("perspectives").to_pylist()
    clusters = group_clusters(perspectives, cfg.max_clusters)
    templates, dropped = assemble_templates(
        {c.cluster_id: c.perspective for c in clusters},
        ctx.read("analysis_prompts").to_pylist(),
        ctx.read("tasks").to_pylist(),
        ctx.read("demos").to_pylist(),
        cfg.near_duplicate_threshold,
    )
    upstream = {name: ctx.store.manifest(name) for name in REPORTED_STAGES}
    plot_cluster_sizes(group_clusters(perspectives), ctx.files_dir / "instruction_clusters.png")
    write_report(ctx.files_dir / "instructions.md", perspectives, clusters, templates, upstream, dropped)
    if not templates:
        raise StageFailed(
            "instruction construction produced zero templates: the teacher gave no usable analysis prompt or task "
            "(see the rejects of the analysis_prompts, task_ideas and tasks stages and their "
            "files/responses_*.parquet)"
        )
    kinds = Counter(f"kind_{template['kind']}" for template in templates)
    ctx.log(f"{len(templates)} templates ({', '.join(f'{k}={v}' for k, v in sorted(kinds.items()))})")
    return StageOutput(
        table=pa.Table.from_pylist(templates, schema=TEMPLATE_SCHEMA),
        counts={"templates": len(templates), **dropped, **dict(sorted(kinds.items()))},
    )


STAGE = Stage(
    name="templates",
    run=build_templates,
    inputs=("perspectives", "analysis_prompts", "tasks", "demos"),
    sections=("instructions.max_clusters", "instructions.near_duplicate_threshold"),
    description="assemble typed instruction templates and the instruction report (S11)",
)
