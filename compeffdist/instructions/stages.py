"""Instruction-construction stages (METHOD.md S1-S11): attributes -> perspectives -> analysis prompts,
tasks (ideas, standardized with seed demos) and grounded demos -> typed instruction templates.

Every teacher call goes through `ask_teacher` (Ray actor pool, resumable shards, parse, bounded
re-asks, rejects). Ids join everything: text_id, attribute_id, cluster_id, task_id ("c<cluster>-t<k>"),
demo ids; never prompt text or position. Iteration is sorted and sampling is seeded by run.seed.
"""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any

import pyarrow as pa

from compeffdist.instructions import prompts
from compeffdist.instructions.clusters import dumps, group_clusters, official_cluster_list
from compeffdist.instructions.filters import (
    NearDuplicateFilter,
    mentions_reference_text,
    mentions_two_texts,
    task_kind,
)
from compeffdist.instructions.parsers import (
    parse_analysis_prompts,
    parse_attributes,
    parse_demo_pairs,
    parse_standardized_task,
    parse_task_ideas,
)
from compeffdist.instructions.schemas import (
    AnalysisPromptList,
    AttributeList,
    DemoList,
    StandardizedTask,
    TaskIdeaList,
    request_schema,
)
from compeffdist.instructions.teacher import TeacherCall, ask_teacher, merge_usage
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
PERSPECTIVE_SCHEMA = pa.schema(
    [
        ("attribute_id", pa.string()),
        ("attribute", pa.string()),
        ("count", pa.int64()),
        ("variants", pa.string()),
        ("description", pa.string()),
        ("top_descriptions", pa.string()),
        ("cluster_id", pa.int64()),
        ("rank_in_cluster", pa.int64()),
    ]
)
PROMPT_SCHEMA = pa.schema(
    [
        ("prompt_id", pa.string()),
        ("cluster_id", pa.int64()),
        ("prompt_index", pa.int64()),
        ("prompt", pa.string()),
        ("request_id", pa.string()),
    ]
)
TASK_SCHEMA = pa.schema(
    [
        ("task_id", pa.string()),
        ("cluster_id", pa.int64()),
        ("task_index", pa.int64()),
        ("kind", pa.string()),
        ("task_name", pa.string()),
        ("task_description", pa.string()),
        ("seed_demos", pa.string()),
        ("standardized", pa.bool_()),
        ("idea", pa.string()),
        ("request_id", pa.string()),
    ]
)
DEMO_SCHEMA = pa.schema(
    [
        ("demo_id", pa.string()),
        ("task_id", pa.string()),
        ("cluster_id", pa.int64()),
        ("request_id", pa.string()),
        ("input", pa.string()),
        ("output", pa.string()),
        ("reference_text_ids", pa.string()),
    ]
)
TEMPLATE_SCHEMA = pa.schema(
    [
        ("template_id", pa.string()),
        ("cluster_id", pa.int64()),
        ("kind", pa.string()),
        ("task_name", pa.string()),
        ("task_description", pa.string()),
        ("demos", pa.string()),
        ("perspective", pa.string()),
    ]
)
TEACHER_SECTIONS = (
    "models.teacher",
    "engines.teacher",
    "instructions.structured_output",
    "instructions.parse_retries",
    "run.seed",
)
REFERENCES_PER_DEMO_REQUEST = 2
SEED_DEMOS_SHOWN = 2
PAIRS_PER_DEMO_RESPONSE = 2


def _seeded(*parts: Any) -> random.Random:
    """A Random seeded by run seed and ids, so one item's sample does not depend on the others."""
    return random.Random(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest())


def _usage_models(ctx: StageContext) -> dict[str, str]:
    return {"teacher": ctx.config.models.teacher.name}


# ---------------------------------------------------------------- attributes (S1, S2)


def sample_texts(pool: list[dict[str, Any]], wanted: int, seed: int) -> list[dict[str, Any]]:
    """Up to `wanted` texts spread evenly over domains (round-robin over sorted domains, seeded order within)."""
    by_domain: dict[str, list[dict[str, Any]]] = {}
    for row in sorted(pool, key=lambda r: r["text_id"]):
        by_domain.setdefault(row["domain"], []).append(row)
    for domain in sorted(by_domain):
        _seeded(seed, "attributes", domain).shuffle(by_domain[domain])
    chosen: list[dict[str, Any]] = []
    queues = [by_domain[d] for d in sorted(by_domain)]
    while len(chosen) < wanted and any(queues):
        for queue in queues:
            if queue and len(chosen) < wanted:
                chosen.append(queue.pop(0))
    return chosen


def _attributes_parser(text: str) -> tuple[Any, str]:
    parsed = parse_attributes(text)
    return (parsed, parsed.method) if parsed.ok else (None, "no attribute found")


def enumerate_attributes(ctx: StageContext) -> StageOutput:
    """S1+S2: the teacher lists each sampled text's sentiment-related attributes; one row per parsed mention."""
    cfg = ctx.config.instructions
    pool = ctx.read("pool", columns=["text_id", "domain", "text"]).to_pylist()
    texts = sample_texts(pool, cfg.texts_for_attributes, ctx.config.run.seed)
    schema = request_schema(AttributeList)
    calls = [
        TeacherCall(f"attr-{t['text_id']}", prompts.attribute_enumeration(t["text"], cfg.structured_output), schema)
        for t in texts
    ]
    answers, stats = ask_teacher(ctx, "attributes", calls, cfg.enumeration_sampling, _attributes_parser)
    rows = []
    for text in texts:
        answer = answers.get(f"attr-{text['text_id']}")
        if answer is None:
            continue
        for index, item in enumerate(answer.value.items):
            rows.append(
                {
                    "text_id": text["text_id"],
                    "domain": text["domain"],
                    "request_id": answer.request_id,
                    "item_index": index,
                    "raw_name": item.name,
                    "description": item.description,
                    "value": item.value,
                    "parse_method": answer.method,
                }
            )
    domains = sorted({t["domain"] for t in texts})
    ctx.log(f"{len(rows)} attribute mentions from {stats.parsed} of {len(texts)} texts ({len(domains)} domains)")
    return StageOutput(
        table=pa.Table.from_pylist(rows, schema=MENTION_SCHEMA),
        counts={"texts": len(texts), "mentions": len(rows), **stats.counts("teacher")},
        models=_usage_models(ctx),
        token_usage=stats.usage,
        extra={"sampling": cfg.enumeration_sampling.model_dump(), "domains": domains},
    )


# ---------------------------------------------------------------- perspectives (S3)


def build_perspectives(ctx: StageContext) -> StageOutput:
    """S3: normalize names, keep frequent attributes, embed them on Ray, cluster into perspectives."""
    from compeffdist.instructions.clustering import cluster_embeddings, renumber_by_size
    from compeffdist.instructions.embedding import embed_names
    from compeffdist.instructions.normalize import Mention, aggregate_attributes, frequent_attributes

    cfg = ctx.config.instructions
    mentions = [
        Mention(r["text_id"], r["raw_name"], r["description"], r["value"])
        for r in sorted(ctx.read("attributes").to_pylist(), key=lambda r: (r["text_id"], r["item_index"]))
    ]
    attributes = aggregate_attributes(mentions)
    kept = frequent_attributes(attributes, cfg.min_attribute_count)
    if not kept:
        raise RuntimeError(
            f"no attribute was seen in more than instructions.min_attribute_count={cfg.min_attribute_count} texts "
            f"({len(mentions)} mentions, {len(attributes)} distinct names): lower min_attribute_count, raise "
            "texts_for_attributes, or check the attributes stage's rejects (the teacher's answers did not parse)"
        )
    ids = [a.attribute_id for a in kept]
    embeddings = embed_names(ctx, ids, [a.name for a in kept])
    counts = [a.count for a in kept]
    names = [a.name for a in kept]
    raw_labels = cluster_embeddings(embeddings, counts, cfg.clustering, ctx.config.run.seed)
    labels = renumber_by_size(raw_labels.tolist(), counts, names)
    rank: dict[int, int] = {}
    rows = []
    for attribute, label in sorted(zip(kept, labels, strict=True), key=lambda p: (p[1], -p[0].count, p[0].name)):
        rows.append(
            {
                "attribute_id": attribute.attribute_id,
                "attribute": attribute.name,
                "count": attribute.count,
                "variants": dumps(dict(sorted(attribute.variants.items()))),
                "description": attribute.description,
                "top_descriptions": dumps(attribute.top_descriptions(3)),
                "cluster_id": label,
                "rank_in_cluster": rank.setdefault(label, 0),
            }
        )
        rank[label] += 1
    clusters = group_clusters(rows)
    (ctx.files_dir / "clusters.json").write_text(
        json.dumps(official_cluster_list(clusters), ensure_ascii=False, indent=1), encoding="utf-8"
    )
    ctx.log(f"{len(attributes)} normalized attributes, {len(kept)} kept, {len(clusters)} clusters")
    return StageOutput(
        table=pa.Table.from_pylist(rows, schema=PERSPECTIVE_SCHEMA),
        counts={
            "mentions": len(mentions),
            "normalized_attributes": len(attributes),
            "kept_attributes": len(kept),
            "clusters": len(clusters),
        },
        models={"embedding": ctx.config.models.embedding.name},
        extra={"clustering": cfg.clustering.model_dump(), "embedding_dim": int(embeddings.shape[1])},
    )


# ---------------------------------------------------------------- analysis prompts (S4, S5)


def _prompts_parser(text: str) -> tuple[Any, str]:
    parsed = parse_analysis_prompts(text)
    return (parsed.items, parsed.method) if parsed.ok else (None, "no prompt found")


def generate_analysis_prompts(ctx: StageContext) -> StageOutput:
    """S4+S5: per perspective, the teacher writes open-ended analysis prompts from the cluster's attributes."""
    cfg = ctx.config.instructions
    clusters = group_clusters(ctx.read("perspectives").to_pylist(), cfg.max_clusters)
    schema = request_schema(AnalysisPromptList)
    calls = [
        TeacherCall(
            f"analysis-c{c.cluster_id}",
            prompts.analysis_prompt_generation(
                [a.name for a in c.attributes],
                [(a.name, a.description) for a in c.top(cfg.top_attributes_per_cluster)],
                cfg.analysis_prompts_per_cluster,
                cfg.structured_output,
            ),
            schema,
        )
        for c in clusters
    ]
    answers, stats = ask_teacher(ctx, "analysis_prompts", calls, cfg.generation_sampling, _prompts_parser)
    unique = NearDuplicateFilter(cfg.near_duplicate_threshold)
    rows, filtered = [], 0
    for cluster in clusters:
        answer = answers.get(f"analysis-c{cluster.cluster_id}")
        kept = 0
        for prompt in answer.value if answer else []:
            if kept >= cfg.analysis_prompts_per_cluster:
                break
            if mentions_two_texts(prompt) or mentions_reference_text(prompt) or not unique.accept(prompt):
                filtered += 1
                continue
            rows.append(
                {
                    "prompt_id": f"c{cluster.cluster_id}-p{kept}",
                    "cluster_id": cluster.cluster_id,
                    "prompt_index": kept,
                    "prompt": prompt,
                    "request_id": answer.request_id,
                }
            )
            kept += 1
    return StageOutput(
        table=pa.Table.from_pylist(rows, schema=PROMPT_SCHEMA),
        counts={
            "clusters": len(clusters),
            "prompts": len(rows),
            "filtered_duplicates_or_two_texts": filtered,
            **stats.counts("teacher"),
        },
        models=_usage_models(ctx),
        token_usage=stats.usage,
        extra={"sampling": cfg.generation_sampling.model_dump()},
    )


# ---------------------------------------------------------------- tasks (S6, S7, S8)


def _ideas_parser(text: str) -> tuple[Any, str]:
    parsed = parse_task_ideas(text)
    return (parsed.items, parsed.method) if parsed.ok else (None, "no task idea found")


def _standardized_parser(text: str) -> tuple[Any, str]:
    task = parse_standardized_task(text)
    return (task, "parsed") if task is not None else (None, "no task name and description found")


def _clean_demos(demos: list[dict[str, str]], unique: NearDuplicateFilter, limit: int) -> tuple[list[dict], int]:
    """Demos without two-text/reference-text mentions or (near-)duplicate inputs, the first `limit`."""
    kept, dropped = [], 0
    for demo in demos:
        text = f"{demo['input']} {demo['output']}"
        if len(kept) >= limit or mentions_two_texts(text) or mentions_reference_text(text):
            dropped += 1
        elif unique.accept(demo["input"]):
            kept.append({"input": demo["input"], "output": demo["output"]})
        else:
            dropped += 1
    return kept, dropped


def generate_tasks(ctx: StageContext) -> StageOutput:
    """S6-S8: typed task ideas per perspective, then each standardized with an output format and seed demos.

    An idea whose standardization does not parse is kept as the teacher stated it (no demos,
    `standardized` false) rather than lost; tasks that involve two texts are dropped.
    """
    cfg = ctx.config.instructions
    structured = cfg.structured_output
    clusters = group_clusters(ctx.read("perspectives").to_pylist(), cfg.max_clusters)
    idea_calls = []
    for cluster in clusters:
        top = cluster.attributes[0]
        idea_calls.append(
            TeacherCall(
                f"task1-c{cluster.cluster_id}",
                prompts.task_ideation(top.name, top.description, cfg.tasks_per_cluster, structured),
                request_schema(TaskIdeaList, kinds=True),
            )
        )
    ideas_by_call, idea_stats = ask_teacher(ctx, "task_ideas", idea_calls, cfg.generation_sampling, _ideas_parser)

    ideas: list[tuple[int, int, Any]] = []  # (cluster_id, task_index, idea)
    two_text_ideas = 0
    for cluster in clusters:
        answer = ideas_by_call.get(f"task1-c{cluster.cluster_id}")
        unique = NearDuplicateFilter(cfg.near_duplicate_threshold)
        for idea in answer.value if answer else []:
            if len([i for i in ideas if i[0] == cluster.cluster_id]) >= cfg.tasks_per_cluster:
                break
            if mentions_two_texts(f"{idea.task_name} {idea.task_description}"):
                two_text_ideas += 1
            elif unique.accept(f"{idea.task_name} {idea.task_description}"):
                ideas.append((cluster.cluster_id, len([i for i in ideas if i[0] == cluster.cluster_id]), idea))

    standardize_calls = [
        TeacherCall(
            f"task2-c{cid}-t{index}",
            prompts.task_standardization(
                idea.task_name, idea.task_type, idea.task_description, max(cfg.seed_demos_per_task + 1, 8), structured
            ),
            request_schema(StandardizedTask, kinds=True),
        )
        for cid, index, idea in ideas
    ]
    standardized, std_stats = ask_teacher(
        ctx, "task_standardization", standardize_calls, cfg.generation_sampling, _standardized_parser
    )
    rows, two_text_tasks, dropped_demos = [], 0, 0
    for cid, index, idea in ideas:
        request_id = f"task2-c{cid}-t{index}"
        answer = standardized.get(request_id)
        task = answer.value if answer else None
        name = task.task_name if task else idea.task_name
        description = task.task_description if task else idea.task_description
        examples = [d.model_dump() for d in task.examples] if task else []
        if mentions_two_texts(f"{name} {description}"):
            two_text_tasks += 1
            ctx.reject("teacher", request_id, "task", "task involves two texts", description)
            continue
        demos, dropped = _clean_demos(
            examples, NearDuplicateFilter(cfg.near_duplicate_threshold), cfg.seed_demos_per_task
        )
        dropped_demos += dropped
        rows.append(
            {
                "task_id": f"c{cid}-t{index}",
                "cluster_id": cid,
                "task_index": index,
                "kind": task_kind((task.task_type if task else "") or idea.task_type, name, description),
                "task_name": name,
                "task_description": description,
                "seed_demos": dumps(demos),
                "standardized": task is not None,
                "idea": dumps(idea.model_dump()),
                "request_id": request_id if task else f"task1-c{cid}",
            }
        )
    return StageOutput(
        table=pa.Table.from_pylist(rows, schema=TASK_SCHEMA),
        counts={
            "clusters": len(clusters),
            "ideas": len(ideas),
            "tasks": len(rows),
            "tasks_unstandardized": sum(not r["standardized"] for r in rows),
            "two_text_ideas": two_text_ideas,
            "two_text_tasks": two_text_tasks,
            "seed_demos_dropped": dropped_demos,
            **idea_stats.counts("ideas"),
            **std_stats.counts("standardize"),
        },
        models=_usage_models(ctx),
        token_usage=merge_usage(idea_stats.usage, std_stats.usage),
        extra={"sampling": cfg.generation_sampling.model_dump()},
    )


# ---------------------------------------------------------------- demos (S9, S10)


def _demos_parser(text: str) -> tuple[Any, str]:
    parsed = parse_demo_pairs(text)
    return (parsed.items, parsed.method) if parsed.ok else (None, "no Input/Output pair found")


def generate_demos(ctx: StageContext) -> StageOutput:
    """S9+S10: per task, requests that show seed demos and real reference texts; the teacher writes new
    instances in the references' style. Pairs that mention reference texts or two texts are dropped."""
    cfg = ctx.config.instructions
    seed = ctx.config.run.seed
    tasks = sorted(ctx.read("tasks").to_pylist(), key=lambda t: t["task_id"])
    references = sorted(ctx.read("pool", columns=["text_id", "text"]).to_pylist(), key=lambda r: r["text_id"])
    calls, request_refs = [], {}
    schema = request_schema(DemoList)
    for task in tasks:
        seed_demos = json.loads(task["seed_demos"])
        for k in range(cfg.demo_requests_per_task):
            rng = _seeded(seed, "demos", task["task_id"], k)
            shown = rng.sample(seed_demos, min(SEED_DEMOS_SHOWN, len(seed_demos)))
            refs = rng.sample(references, min(REFERENCES_PER_DEMO_REQUEST, len(references)))
            request_id = f"demo-{task['task_id']}-d{k}"
            request_refs[request_id] = [r["text_id"] for r in refs]
            prompt = prompts.demo_generation(
                task["task_name"], task["task_description"], shown, [r["text"] for r in refs], cfg.structured_output
            )
            calls.append(TeacherCall(request_id, prompt, schema))
    answers, stats = ask_teacher(ctx, "demos", calls, cfg.generation_sampling, _demos_parser)
    rows, dropped = [], 0
    for task in tasks:
        unique = NearDuplicateFilter(cfg.near_duplicate_threshold)
        for demo in json.loads(task["seed_demos"]):
            unique.accept(demo["input"])
        kept_for_task = 0
        for k in range(cfg.demo_requests_per_task):
            request_id = f"demo-{task['task_id']}-d{k}"
            answer = answers.get(request_id)
            pairs = [d.model_dump() for d in answer.value[:PAIRS_PER_DEMO_RESPONSE]] if answer else []
            room = cfg.max_generated_demos_per_task - kept_for_task
            kept, lost = _clean_demos(pairs, unique, max(room, 0))
            dropped += lost
            for j, demo in enumerate(kept):
                rows.append(
                    {
                        "demo_id": f"{task['task_id']}-d{k}-{j}",
                        "task_id": task["task_id"],
                        "cluster_id": task["cluster_id"],
                        "request_id": request_id,
                        "input": demo["input"],
                        "output": demo["output"],
                        "reference_text_ids": dumps(request_refs[request_id]),
                    }
                )
            kept_for_task += len(kept)
    return StageOutput(
        table=pa.Table.from_pylist(rows, schema=DEMO_SCHEMA),
        counts={"tasks": len(tasks), "demos": len(rows), "demos_dropped": dropped, **stats.counts("teacher")},
        models=_usage_models(ctx),
        token_usage=stats.usage,
        extra={"sampling": cfg.generation_sampling.model_dump()},
    )


# ---------------------------------------------------------------- templates (S11)


def template_id(cluster_id: int, kind: str, task_name: str, task_description: str, demos: str) -> str:
    """Stable id: a hash of the template's content and its cluster."""
    payload = dumps([cluster_id, kind, task_name, task_description, demos])
    return hashlib.sha1(payload.encode("utf-8")).hexdigest()[:16]


def assemble_templates(
    clusters: dict[int, str],
    analysis_rows: list[dict[str, Any]],
    task_rows: list[dict[str, Any]],
    demo_rows: list[dict[str, Any]],
    near_duplicate_threshold: float,
) -> tuple[list[dict[str, Any]], int]:
    """Typed templates from prompts, tasks and demos (joined by ids); returns (templates, duplicates dropped)."""
    demos_by_task: dict[str, list[dict[str, str]]] = {}
    for demo in sorted(demo_rows, key=lambda d: d["demo_id"]):
        demos_by_task.setdefault(demo["task_id"], []).append({"input": demo["input"], "output": demo["output"]})
    unique = NearDuplicateFilter(near_duplicate_threshold)
    templates, duplicates = [], 0

    def add(cluster_id: int, kind: str, name: str, description: str, demos: list[dict[str, str]]) -> None:
        nonlocal duplicates
        if cluster_id not in clusters or not unique.accept(f"{kind} {description}"):
            duplicates += 1
            return
        demos_json = dumps(demos)
        templates.append(
            {
                "template_id": template_id(cluster_id, kind, name, description, demos_json),
                "cluster_id": cluster_id,
                "kind": kind,
                "task_name": name,
                "task_description": description,
                "demos": demos_json,
                "perspective": clusters[cluster_id],
            }
        )

    for row in sorted(analysis_rows, key=lambda r: (r["cluster_id"], r["prompt_index"])):
        add(row["cluster_id"], "analysis", "analysis", row["prompt"], [])
    for row in sorted(task_rows, key=lambda r: (r["cluster_id"], r["task_index"])):
        seen_inputs: set[str] = set()
        demos = []
        for demo in [*json.loads(row["seed_demos"]), *demos_by_task.get(row["task_id"], [])]:
            if demo["input"] not in seen_inputs:
                seen_inputs.add(demo["input"])
                demos.append(demo)
        add(row["cluster_id"], row["kind"], row["task_name"], row["task_description"], demos)
    return templates, duplicates


def build_templates(ctx: StageContext) -> StageOutput:
    """S11: assemble analysis and typed task templates; write the instruction-construction report."""
    from compeffdist.instructions.report import plot_cluster_sizes, write_report

    cfg = ctx.config.instructions
    perspectives = ctx.read("perspectives").to_pylist()
    clusters = group_clusters(perspectives, cfg.max_clusters)
    templates, duplicates = assemble_templates(
        {c.cluster_id: c.perspective for c in clusters},
        ctx.read("analysis_prompts").to_pylist(),
        ctx.read("tasks").to_pylist(),
        ctx.read("demos").to_pylist(),
        cfg.near_duplicate_threshold,
    )
    upstream = {name: ctx.store.manifest(name) for name in ("attributes", "analysis_prompts", "tasks", "demos")}
    plot_cluster_sizes(group_clusters(perspectives), ctx.files_dir / "instruction_clusters.png")
    write_report(ctx.files_dir / "instructions.md", perspectives, clusters, templates, upstream)
    if not templates:
        raise RuntimeError(
            "instruction construction produced zero templates: the teacher gave no usable analysis prompt or task "
            "(see the rejects of the analysis_prompts and tasks stages and their files/responses_*.parquet)"
        )
    kinds: dict[str, int] = {}
    for template in templates:
        kinds[f"kind_{template['kind']}"] = kinds.get(f"kind_{template['kind']}", 0) + 1
    ctx.log(f"{len(templates)} templates ({', '.join(f'{k}={v}' for k, v in sorted(kinds.items()))})")
    return StageOutput(
        table=pa.Table.from_pylist(templates, schema=TEMPLATE_SCHEMA),
        counts={"templates": len(templates), "duplicates_dropped": duplicates, **dict(sorted(kinds.items()))},
    )


GENERATION = ("instructions.generation_sampling", "instructions.max_clusters", "instructions.near_duplicate_threshold")
STAGES = [
    Stage(
        name="attributes",
        run=enumerate_attributes,
        inputs=("pool",),
        sections=("instructions.texts_for_attributes", "instructions.enumeration_sampling", *TEACHER_SECTIONS),
        description="teacher enumerates sentiment-related attributes of sampled user texts (S1-S2)",
    ),
    Stage(
        name="perspectives",
        run=build_perspectives,
        inputs=("attributes",),
        sections=(
            "instructions.min_attribute_count",
            "instructions.clustering",
            "instructions.embedding_batch_size",
            "instructions.embedding_num_gpus",
            "models.embedding",
            "run.seed",
        ),
        description="normalize, filter, embed (Ray) and cluster attributes into perspectives (S3)",
    ),
    Stage(
        name="analysis_prompts",
        run=generate_analysis_prompts,
        inputs=("perspectives",),
        sections=(
            *GENERATION,
            "instructions.analysis_prompts_per_cluster",
            "instructions.top_attributes_per_cluster",
            *TEACHER_SECTIONS,
        ),
        description="teacher writes analysis prompts per perspective (S4-S5)",
    ),
    Stage(
        name="tasks",
        run=generate_tasks,
        inputs=("perspectives",),
        sections=(*GENERATION, "instructions.tasks_per_cluster", "instructions.seed_demos_per_task", *TEACHER_SECTIONS),
        description="teacher proposes typed tasks and standardizes them with seed demos (S6-S8)",
    ),
    Stage(
        name="demos",
        run=generate_demos,
        inputs=("tasks", "pool"),
        sections=(
            *GENERATION,
            "instructions.demo_requests_per_task",
            "instructions.max_generated_demos_per_task",
            *TEACHER_SECTIONS,
        ),
        description="teacher writes task demos grounded in real reference texts (S9-S10)",
    ),
    Stage(
        name="templates",
        run=build_templates,
        inputs=("perspectives", "analysis_prompts", "tasks", "demos"),
        sections=("instructions.max_clusters", "instructions.near_duplicate_threshold"),
        description="assemble typed instruction templates and the instruction report (S11)",
    ),
]
