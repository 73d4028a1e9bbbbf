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
import re
from collections import Counter
from typing import Any

import pyarrow as pa

from compeffdist.generation.usage import merge_usage
from compeffdist.instructions import prompts
from compeffdist.instructions.clusters import dumps, group_clusters, official_cluster_list
from compeffdist.instructions.filters import (
    NearDuplicateFilter,
    clean_demos,
    keep_items,
    mentions_two_texts,
    task_kind,
)
from compeffdist.instructions.parsers import (
    Parsed,
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
from compeffdist.instructions.teacher import ParseResult, TeacherCall, ask_teacher
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
        ("template_id", pa.string()),  # from (cluster_id, kind, source_id): stable when demos are regenerated
        ("cluster_id", pa.int64()),
        ("kind", pa.string()),
        ("source_id", pa.string()),  # the analysis prompt_id or the task_id it was made from
        ("task_name", pa.string()),
        ("task_description", pa.string()),
        ("demos", pa.string()),
        ("perspective", pa.string()),
        ("content_hash", pa.string()),  # changes whenever the text or the demos do
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
# Why generated items were dropped; every reason is always in the stage counts (0 included).
DROP_REASONS = ("over_limit", "two_texts", "reference_text", "near_duplicate")


def _seeded(*parts: Any) -> random.Random:
    """A Random seeded by run seed and ids, so one item's sample does not depend on the others."""
    return random.Random(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest())


def _usage_models(ctx: StageContext) -> dict[str, str]:
    return {"teacher": ctx.config.models.teacher.name}


def _drop_counts(prefix: str, dropped: Counter[str], reasons: tuple[str, ...] = DROP_REASONS) -> dict[str, int]:
    """Stage counts `<prefix>_dropped_<reason>` for every reason (unknown reasons too), so none goes unreported."""
    return {f"{prefix}_dropped_{reason}": dropped[reason] for reason in sorted({*reasons, *dropped})}


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


def _verdict(parsed: Parsed[Any], why_not: str) -> ParseResult:
    """A parser's items for ask_teacher, with the count of items it dropped (surfaced in the stage counts)."""
    if not parsed.ok:
        return ParseResult(None, why_not, parsed.dropped)
    return ParseResult(parsed.items, parsed.method, parsed.dropped)


def _attributes_parser(text: str) -> ParseResult:
    return _verdict(parse_attributes(text), "no attribute found")


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
        for index, item in enumerate(answer.value):
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
    attributes = aggregate_attributes(mentions, cfg.attribute_count)
    kept = frequent_attributes(attributes, cfg.min_attribute_count)
    if not kept:
        raise RuntimeError(
            f"no attribute has more than instructions.min_attribute_count={cfg.min_attribute_count} "
            f"{cfg.attribute_count} "
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


def _prompts_parser(text: str) -> ParseResult:
    return _verdict(parse_analysis_prompts(text), "no prompt found")


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
    rows: list[dict[str, Any]] = []
    dropped: Counter[str] = Counter()
    for cluster in clusters:
        answer = answers.get(f"analysis-c{cluster.cluster_id}")
        kept, drops = keep_items(answer.value if answer else [], str, str, unique, cfg.analysis_prompts_per_cluster)
        dropped.update(drops)
        rows += [
            {
                "prompt_id": f"c{cluster.cluster_id}-p{index}",
                "cluster_id": cluster.cluster_id,
                "prompt_index": index,
                "prompt": prompt,
                "request_id": answer.request_id,
            }
            for index, prompt in enumerate(kept)
        ]
    return StageOutput(
        table=pa.Table.from_pylist(rows, schema=PROMPT_SCHEMA),
        counts={
            "clusters": len(clusters),
            "prompts": len(rows),
            **_drop_counts("prompts", dropped),
            **stats.counts("teacher"),
        },
        models=_usage_models(ctx),
        token_usage=stats.usage,
        extra={"sampling": cfg.generation_sampling.model_dump()},
    )


# ---------------------------------------------------------------- tasks (S6, S7, S8)


def _ideas_parser(text: str) -> ParseResult:
    return _verdict(parse_task_ideas(text), "no task idea found")


def _standardized_parser(text: str) -> ParseResult:
    verdict = _verdict(parse_standardized_task(text), "no task name and description found")
    return verdict._replace(value=verdict.value[0]) if verdict.value else verdict


def generate_tasks(ctx: StageContext) -> StageOutput:
    """S6-S8: typed task ideas per perspective, then each standardized with an output format and seed demos.

    An idea whose standardization never parses has no output format and no demos: it is dropped and
    rejected, unless instructions.keep_unstandardized_tasks keeps it as the teacher stated it
    (`standardized` false). Tasks that involve two texts are dropped.
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
    idea_drops: Counter[str] = Counter()

    def idea_text(idea: Any) -> str:
        return f"{idea.task_name} {idea.task_description}"

    for cluster in clusters:
        answer = ideas_by_call.get(f"task1-c{cluster.cluster_id}")
        unique = NearDuplicateFilter(cfg.near_duplicate_threshold)
        kept, drops = keep_items(answer.value if answer else [], idea_text, idea_text, unique, cfg.tasks_per_cluster)
        idea_drops.update(drops)
        ideas += [(cluster.cluster_id, index, idea) for index, idea in enumerate(kept)]

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
    rows: list[dict[str, Any]] = []
    task_drops: Counter[str] = Counter()
    seed_drops: Counter[str] = Counter()
    for cid, index, idea in ideas:
        request_id = f"task2-c{cid}-t{index}"
        answer = standardized.get(request_id)
        task = answer.value if answer else None
        if task is None and not cfg.keep_unstandardized_tasks:
            # The stage-2 answer itself is already rejected by ask_teacher; this records the task's fate.
            task_drops["unstandardized"] += 1
            ctx.reject(
                "teacher", f"c{cid}-t{index}", "task", "task never standardized: dropped", dumps(idea.model_dump())
            )
            continue
        name = task.task_name if task else idea.task_name
        description = task.task_description if task else idea.task_description
        examples = [d.model_dump() for d in task.examples] if task else []
        if mentions_two_texts(f"{name} {description}"):
            task_drops["two_texts"] += 1
            ctx.reject("teacher", request_id, "task", "task involves two texts", description)
            continue
        demos, dropped = clean_demos(
            examples, NearDuplicateFilter(cfg.near_duplicate_threshold), cfg.seed_demos_per_task
        )
        seed_drops.update(dropped)
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
            "tasks_kept_unstandardized": sum(not r["standardized"] for r in rows),
            **_drop_counts("ideas", idea_drops, ("over_limit", "two_texts", "near_duplicate")),
            **_drop_counts("tasks", task_drops, ("unstandardized", "two_texts")),
            **_drop_counts("seed_demos", seed_drops),
            **idea_stats.counts("ideas"),
            **std_stats.counts("standardize"),
        },
        models=_usage_models(ctx),
        token_usage=merge_usage(idea_stats.usage, std_stats.usage),
        extra={"sampling": cfg.generation_sampling.model_dump()},
    )


# ---------------------------------------------------------------- demos (S9, S10)


def _demos_parser(text: str) -> ParseResult:
    return _verdict(parse_demo_pairs(text), "no Input/Output pair found")


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
    rows: list[dict[str, Any]] = []
    dropped: Counter[str] = Counter()
    for task in tasks:
        unique = NearDuplicateFilter(cfg.near_duplicate_threshold)
        for demo in json.loads(task["seed_demos"]):
            unique.accept(demo["input"])
        kept_for_task = 0
        for k in range(cfg.demo_requests_per_task):
            request_id = f"demo-{task['task_id']}-d{k}"
            answer = answers.get(request_id)
            pairs = [d.model_dump() for d in answer.value] if answer else []
            dropped["extra_pairs"] += max(len(pairs) - PAIRS_PER_DEMO_RESPONSE, 0)  # the request asked for two
            room = cfg.max_generated_demos_per_task - kept_for_task
            kept, lost = clean_demos(pairs[:PAIRS_PER_DEMO_RESPONSE], unique, max(room, 0))
            dropped.update(lost)
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
        counts={
            "tasks": len(tasks),
            "demos": len(rows),
            **_drop_counts("demos", dropped, (*DROP_REASONS, "extra_pairs")),
            **stats.counts("teacher"),
        },
        models=_usage_models(ctx),
        token_usage=stats.usage,
        extra={"sampling": cfg.generation_sampling.model_dump()},
    )


# ---------------------------------------------------------------- templates (S11)


def template_id(cluster_id: int, kind: str, source_id: str) -> str:
    """Stable id from what a template is (cluster, kind, the prompt or task it comes from), not its content:
    regenerating demos keeps every template id, and with it the labeling stage's record ids."""
    return hashlib.sha1(dumps([cluster_id, kind, source_id]).encode("utf-8")).hexdigest()[:16]


def content_hash(cluster_id: int, kind: str, task_name: str, task_description: str, demos: str) -> str:
    """A hash of the template's content: tells two versions of one template_id apart."""
    payload = dumps([cluster_id, kind, task_name, task_description, demos])
    return hashlib.sha1(payload.encode("utf-8")).hexdigest()[:16]


def _natural_key(value: str) -> list[Any]:
    """Sort key in which numbers compare as numbers: "c0-t1-d2-0" comes before "c0-t1-d10-0"."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", value)]


def assemble_templates(
    clusters: dict[int, str],
    analysis_rows: list[dict[str, Any]],
    task_rows: list[dict[str, Any]],
    demo_rows: list[dict[str, Any]],
    near_duplicate_threshold: float,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Typed templates from prompts, tasks and demos, joined by ids only; returns (templates, drop counts).

    A task's demos are its seed demos, then its generated demos in demo-id order, through the same
    filter as everywhere (clean_demos). Templates of clusters not in `clusters`, (near-)duplicate
    templates, and demos of unknown tasks are dropped and counted under their own names.
    """
    task_ids = {row["task_id"] for row in task_rows}
    demos_by_task: dict[str, list[dict[str, str]]] = {}
    orphan_demos = 0
    for demo in sorted(demo_rows, key=lambda d: _natural_key(d["demo_id"])):
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
            demos_json = dumps(demos)
            templates.append(
                {
                    "template_id": template_id(cluster_id, kind, source_id),
                    "cluster_id": cluster_id,
                    "kind": kind,
                    "source_id": source_id,
                    "task_name": name,
                    "task_description": description,
                    "demos": demos_json,
                    "perspective": clusters[cluster_id],
                    "content_hash": content_hash(cluster_id, kind, name, description, demos_json),
                }
            )

    for row in sorted(analysis_rows, key=lambda r: (r["cluster_id"], r["prompt_index"])):
        add(row["cluster_id"], "analysis", row["prompt_id"], "analysis", row["prompt"], [])
    for row in sorted(task_rows, key=lambda r: (r["cluster_id"], r["task_index"])):
        candidates = [*json.loads(row["seed_demos"]), *demos_by_task.get(row["task_id"], [])]
        demos, lost = clean_demos(candidates, NearDuplicateFilter(near_duplicate_threshold))
        demo_drops.update(lost)
        add(row["cluster_id"], row["kind"], row["task_id"], row["task_name"], row["task_description"], demos)
    counts = {
        **_drop_counts("templates", dropped, ("unknown_cluster", "near_duplicate")),
        **_drop_counts("template_demos", demo_drops, ("two_texts", "reference_text", "near_duplicate")),
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
    upstream = {name: ctx.store.manifest(name) for name in ("attributes", "analysis_prompts", "tasks", "demos")}
    plot_cluster_sizes(group_clusters(perspectives), ctx.files_dir / "instruction_clusters.png")
    write_report(ctx.files_dir / "instructions.md", perspectives, clusters, templates, upstream, dropped)
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
        counts={"templates": len(templates), **dropped, **dict(sorted(kinds.items()))},
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
            "instructions.attribute_count",
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
        sections=(
            *GENERATION,
            "instructions.tasks_per_cluster",
            "instructions.seed_demos_per_task",
            "instructions.keep_unstandardized_tasks",
            *TEACHER_SECTIONS,
        ),
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
