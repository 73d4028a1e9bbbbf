"""Stages `difficulty` (score every teacher response) and `selection` (difficulty-prioritized subset)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from compeffdist.config import DifficultyConfig, EngineConfig
from compeffdist.stage import Stage, StageContext, StageOutput

SCORE_SCHEMA = pa.schema(
    [
        ("record_id", pa.string()),
        ("difficulty", pa.float64()),
        ("truncated", pa.bool_()),
        ("response_tokens", pa.int64()),
        ("input_tokens", pa.int64()),
        ("error", pa.string()),
    ]
)
SCORER_INPUT_COLUMNS = ["record_id", "messages", "instruction", "response"]
DIFFICULTY_REPORT = "difficulty.md"
DIFFICULTY_PLOT = "difficulty_histogram.png"
SELECTION_REPORT = "selection.md"
SELECTION_PLOT = "selection_histogram.png"
SELECTION_GROUPS = "selection_groups.json"
# Default rows per scorer actor call, in forward batches: enough to sort into length buckets.
ROWS_PER_TASK_BATCHES = 8


class DifficultyWorker:
    """Ray Data actor: loads the scorer once, scores a batch of rows (SCORE_SCHEMA out)."""

    def __init__(self, model: dict[str, Any], difficulty: dict[str, Any], engine: dict[str, Any], seed: int) -> None:
        from compeffdist.config import DifficultyConfig, EngineConfig, ModelSpec
        from compeffdist.difficulty.scorer import DifficultyScorer

        self.scorer = DifficultyScorer(
            ModelSpec.model_validate(model),
            DifficultyConfig.model_validate(difficulty),
            EngineConfig.model_validate(engine),
            seed,
        )

    def __call__(self, batch: pa.Table) -> pa.Table:
        results = self.scorer.score(batch.select(SCORER_INPUT_COLUMNS).to_pylist())
        return pa.Table.from_pylist([asdict(r) for r in results], schema=SCORE_SCHEMA)


def _usable_rows(ctx: StageContext, table: pa.Table) -> pa.Table:
    """Drop (and reject) rows the teacher failed on or answered with nothing."""
    keep = []
    for index, row in enumerate(table.select(["record_id", "response", "error"]).to_pylist()):
        if row["error"]:
            ctx.reject("responses", row["record_id"], "error", f"teacher failed: {row['error']}", row["response"])
        elif not isinstance(row["response"], str) or not row["response"].strip():
            ctx.reject("responses", row["record_id"], "response", "empty teacher response", row["response"])
        else:
            keep.append(index)
    return table.take(keep)


def rows_per_task(difficulty: DifficultyConfig, engine: EngineConfig) -> int:
    """Rows each scorer actor call gets (and writes as one shard): `difficulty.rows_per_task` or 8 forward batches."""
    return difficulty.rows_per_task or ROWS_PER_TASK_BATCHES * engine.resources.batch_size


def score_difficulty(ctx: StageContext) -> StageOutput:
    """Score every usable teacher response on a Ray actor pool; shards in ctx.work make it resumable."""
    from compeffdist.difficulty.report import difficulty_markdown, plot_histogram
    from compeffdist.difficulty.scorer import MODEL_METRICS, scorer_spec
    from compeffdist.rowmap import map_resumable

    cfg = ctx.config
    settings = cfg.difficulty
    spec = scorer_spec(settings, cfg.models.student)
    table = _usable_rows(ctx, ctx.read("responses"))
    kwargs = {
        "model": spec.model_dump(mode="json"),
        "difficulty": settings.model_dump(mode="json"),
        "engine": cfg.engines.scorer.model_dump(mode="json"),
        "seed": cfg.run.seed,
    }
    # The actor pool maps rows_per_task rows per call; the scorer itself still forwards engine.batch_size at a
    # time. With one forward batch per call, sorting by length would only reorder rows inside that batch.
    task_pool = cfg.engines.scorer.resources.model_copy(
        update={"batch_size": rows_per_task(settings, cfg.engines.scorer)}
    )
    scored, stats = map_resumable(
        ctx, table.select(SCORER_INPUT_COLUMNS), DifficultyWorker, kwargs, task_pool, "record_id", "scorer"
    )
    resumed = stats.resumed
    position = {rid: i for i, rid in enumerate(scored.column("record_id").to_pylist())}
    scores = scored.to_pylist()
    keep, columns = [], {"difficulty": [], "truncated": [], "response_tokens": []}
    for index, record_id in enumerate(table.column("record_id").to_pylist()):
        result = scores[position[record_id]]
        if result["error"]:
            ctx.reject("responses", record_id, "messages", f"cannot lay out for scoring: {result['error']}")
            continue
        keep.append(index)
        for name in columns:
            columns[name].append(result[name])
    output = table.take(keep)
    output = output.append_column("difficulty", pa.array(columns["difficulty"], pa.float64()))
    output = output.append_column("difficulty_metric", pa.array([settings.metric] * len(keep), pa.string()))
    output = output.append_column("truncated", pa.array(columns["truncated"], pa.bool_()))
    output = output.append_column("response_tokens", pa.array(columns["response_tokens"], pa.int64()))

    layout = "chat template" if settings.chat_template else "raw concatenation (official)"
    report_settings = {
        "metric": settings.metric,
        "scorer": f"{settings.scorer}: {spec.name}",
        "layout": layout,
        "truncated records": settings.truncated,
    }
    if settings.metric == "rank":
        report_settings["average"] = "tokens not ranked first (official)" if settings.exclude_top1 else "all tokens"
    rows = output.select(["difficulty", "truncated", "kind"]).to_pylist()
    (ctx.files_dir / DIFFICULTY_REPORT).write_text(difficulty_markdown(rows, report_settings), encoding="utf-8")
    values = [r["difficulty"] for r in rows if r["difficulty"] is not None]
    finite = [v for v in values if math.isfinite(v)]
    plot_histogram({"records": finite}, ctx.files_dir / DIFFICULTY_PLOT, settings.metric, f"{settings.metric} scores")

    usage = {}
    if settings.metric in MODEL_METRICS:
        visible = settings.truncated == "score_visible"
        forwarded = sum(s["input_tokens"] for s in scores if (visible or not s["truncated"]) and not s["error"])
        usage[spec.name] = {"prompt_tokens": int(forwarded), "output_tokens": 0, "requests": len(scores)}
    truncated = sum(columns["truncated"])
    ctx.log(
        f"{len(values)} of {len(keep)} records scored ({settings.metric}); {truncated} truncated "
        f"({settings.truncated}); {len(values) - len(finite)} non-finite"
    )
    return StageOutput(
        table=output,
        counts={
            "rows": len(keep),
            "scored": len(values),
            "truncated": truncated,
            "nonfinite": len(values) - len(finite),
            "resumed": resumed,
        },
        models={"scorer": spec.name},
        token_usage=usage,
        extra={**report_settings, "max_length": settings.max_length, "top_p": settings.top_p},
    )


def select_records(ctx: StageContext) -> StageOutput:
    """Keep a difficulty-prioritized, optionally per-instruction stratified subset of the scored records."""
    from compeffdist.difficulty.report import plot_histogram, selection_markdown
    from compeffdist.difficulty.sampling import select

    settings = ctx.config.selection
    seed = ctx.config.seed_of("selection")
    table = ctx.read("difficulty")
    difficulty = table.column("difficulty")
    # NaN/inf (e.g. an IFD whose perplexity overflowed) are not difficulties: they would sort as the hardest.
    pool = table.filter(pc.fill_null(pc.is_finite(difficulty), False))
    unscored = difficulty.null_count
    nonfinite = table.num_rows - pool.num_rows - unscored
    rows = pool.select(["record_id", "difficulty", "cluster_id", "template_id", "kind"]).to_pylist()
    groups = [(r["cluster_id"], r["template_id"]) for r in rows] if settings.strategy == "inprompt" else None
    selection = select(
        [r["record_id"] for r in rows],
        [r["difficulty"] for r in rows],
        groups,
        settings.method,
        settings.rate,
        a=settings.a,
        mode=settings.mode,
        seed=seed,
    )
    selected = pool.append_column("selection_probability", pa.array(selection.probability, pa.float64()))
    selected = selected.filter(pa.array(selection.kept))

    metric = table.column("difficulty_metric")[0].as_py() if table.num_rows else "unknown"
    report_settings = {
        **settings.model_dump(),
        "seed": seed,
        "difficulty metric": metric,
        "unscored (truncated)": unscored,
        "non-finite difficulty (excluded)": nonfinite,
    }
    files = ctx.files_dir
    (files / SELECTION_REPORT).write_text(selection_markdown(rows, selection, report_settings), encoding="utf-8")
    plot_histogram(
        {
            "pool": [r["difficulty"] for r in rows],
            "selected": [r["difficulty"] for r, k in zip(rows, selection.kept, strict=True) if k],
        },
        files / SELECTION_PLOT,
        metric,
        f"{settings.method} selection, rate {settings.rate}",
    )
    group_rows = [
        {**_group_fields(g.group), "pool": g.pool, "selected": g.selected, "expected": g.expected, "rate": g.rate}
        for g in selection.groups
    ]
    (files / SELECTION_GROUPS).write_text(json.dumps(group_rows, indent=1), encoding="utf-8")
    ctx.log(
        f"selected {selected.num_rows} of {pool.num_rows} ({selection.rate:.3f}; target {settings.rate}); "
        f"left out: {unscored} unscored, {nonfinite} non-finite"
    )
    return StageOutput(
        table=selected,
        counts={
            "rows": selected.num_rows,
            "pool": pool.num_rows,
            "selected": selected.num_rows,
            "unscored": unscored,
            "nonfinite": nonfinite,
            "groups": len(selection.groups),
        },
        extra={
            "realized_rate": selection.rate,
            "expected_rate": sum(g.expected for g in selection.groups) / max(pool.num_rows, 1),
            "target_rate": settings.rate,
            "difficulty_metric": metric,
        },
    )


def _group_fields(group: Any) -> dict[str, Any]:
    if group is None:
        return {"group": "all"}
    cluster_id, template_id = group
    return {"cluster_id": cluster_id, "template_id": template_id}


STAGES = [
    Stage(
        name="difficulty",
        run=score_difficulty,
        inputs=("responses",),
        sections=("difficulty", "engines.scorer", "models.student", "run.seed"),
        description="difficulty score of every teacher response (Ray Data actor pool, resumable shards)",
    ),
    Stage(
        name="selection",
        run=select_records,
        inputs=("difficulty",),
        sections=("selection", "run.seed"),
        description="difficulty-prioritized sampling of the training subset",
    ),
]
