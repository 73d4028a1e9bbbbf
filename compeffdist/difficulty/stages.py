"""Stages `difficulty` (score every teacher response) and `selection` (difficulty-prioritized subset).

Both move records part by part. `difficulty` streams the `responses` parts through scorer actors
that return each row with its score (resumable shards); the driver republishes the shards and
keeps only narrow columns for the report. `selection` reads the narrow columns (ids, scores,
groups) to decide, then filters the wide rows part by part in row batches.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from compeffdist.config import DifficultyConfig, EngineConfig
from compeffdist.stage import Stage, StageContext, StageOutput

SCORE_COLUMNS = pa.schema(
    [
        ("difficulty", pa.float64()),
        ("difficulty_metric", pa.string()),
        ("truncated", pa.bool_()),
        ("response_tokens", pa.int64()),
        ("scored_tokens", pa.int64()),  # tokens the scorer forwarded (input + response, after truncation)
        ("score_error", pa.string()),  # why the row was not scored at all: it becomes a reject, not a record
    ]
)
SCORER_INPUT_COLUMNS = ["record_id", "messages", "instruction", "response"]
REPORT_COLUMNS = ["difficulty", "truncated", "kind"]
DIFFICULTY_REPORT = "difficulty.md"
DIFFICULTY_PLOT = "difficulty_histogram.png"
SELECTION_REPORT = "selection.md"
SELECTION_PLOT = "selection_histogram.png"
SELECTION_GROUPS = "selection_groups.json"
# Default rows per scorer actor call, in forward batches: enough to sort into length buckets.
ROWS_PER_TASK_BATCHES = 8
FILTER_BATCH_ROWS = 4096


def unusable_reason(row: dict[str, Any]) -> str | None:
    """Why a teacher row cannot be scored (the teacher failed, or answered nothing), or None."""
    if row.get("error"):
        return f"teacher failed: {row['error']}"
    response = row.get("response")
    if not isinstance(response, str) or not response.strip():
        return "empty teacher response"
    return None


class DifficultyWorker:
    """Ray Data actor: loads the scorer once; returns each row with its score columns (SCORE_COLUMNS)."""

    def __init__(self, model: dict[str, Any], difficulty: dict[str, Any], engine: dict[str, Any], seed: int) -> None:
        from compeffdist.config import ModelSpec
        from compeffdist.difficulty.scorer import DifficultyScorer

        self.settings = DifficultyConfig.model_validate(difficulty)
        self.scorer = DifficultyScorer(
            ModelSpec.model_validate(model), self.settings, EngineConfig.model_validate(engine), seed
        )

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.select([c for c in [*SCORER_INPUT_COLUMNS, "error"] if c in batch.column_names]).to_pylist()
        reasons = [unusable_reason(row) for row in rows]
        usable = [row for row, reason in zip(rows, reasons, strict=True) if reason is None]
        scores = iter(self.scorer.score([{c: row[c] for c in SCORER_INPUT_COLUMNS} for row in usable]))
        columns: dict[str, list[Any]] = {name: [] for name in SCORE_COLUMNS.names}
        for reason in reasons:
            score = asdict(next(scores)) if reason is None else None
            error = reason or (score or {}).get("error")
            if error and reason is None:
                error = f"cannot lay out for scoring: {error}"
            columns["difficulty"].append(None if error else score["difficulty"])
            columns["difficulty_metric"].append(self.settings.metric)
            columns["truncated"].append(bool(score and score["truncated"]))
            columns["response_tokens"].append(score["response_tokens"] if score else 0)
            columns["scored_tokens"].append(score["input_tokens"] if score else 0)
            columns["score_error"].append(error)
        for name in SCORE_COLUMNS.names:
            batch = batch.append_column(
                SCORE_COLUMNS.field(name), pa.array(columns[name], SCORE_COLUMNS.field(name).type)
            )
        return batch


def rows_per_task(difficulty: DifficultyConfig, engine: EngineConfig) -> int:
    """Rows each scorer actor call gets (and writes as one shard): `difficulty.rows_per_task` or 8 forward batches."""
    return difficulty.rows_per_task or ROWS_PER_TASK_BATCHES * engine.resources.batch_size


class ScoredParts:
    """Splits published shards into scored records and rejects, keeping only the report's narrow columns."""

    def __init__(self, ctx: StageContext, visible: bool) -> None:
        self.ctx = ctx
        self.visible = visible
        self.report: list[pa.Table] = []
        self.rows = 0
        self.forwarded = 0
        self.scored_rows = 0

    def keep(self, part: pa.Table) -> pa.Table:
        failed = pc.invert(pc.is_null(part.column("score_error")))
        for row in part.filter(failed).select(["record_id", "score_error", "response"]).to_pylist():
            field = "messages" if row["score_error"].startswith("cannot lay out") else "response"
            self.ctx.reject("responses", row["record_id"], field, row["score_error"], row["response"])
        kept = part.filter(pc.invert(failed)).drop_columns(["score_error"])
        counted = kept if self.visible else kept.filter(pc.invert(kept.column("truncated")))
        self.forwarded += int(pc.sum(counted.column("scored_tokens")).as_py() or 0)
        self.scored_rows += part.num_rows
        return kept.drop_columns(["scored_tokens"])

    def account(self, part: pa.Table) -> None:
        self.rows += part.num_rows
        self.report.append(part.select(REPORT_COLUMNS))

    def narrow(self) -> pa.Table:
        if not self.report:
            return pa.table({c: pa.array([], t) for c, t in (("difficulty", pa.float64()), ("truncated", pa.bool_()),
                                                                ("kind", pa.string()))})  # fmt: skip
        return pa.concat_tables(self.report)


def score_difficulty(ctx: StageContext) -> StageOutput:
    """Score every usable teacher response on a Ray actor pool; shards in ctx.work make it resumable."""
    from compeffdist.difficulty.report import difficulty_markdown, plot_histogram
    from compeffdist.difficulty.scorer import MODEL_METRICS, scorer_spec
    from compeffdist.rowmap import publish_shards, run_sharded_map

    cfg = ctx.config
    settings = cfg.difficulty
    spec = scorer_spec(settings, cfg.models.student)
    kwargs = {
        "model": spec.model_dump(mode="json"),
        "difficulty": settings.model_dump(mode="json"),
        "engine": cfg.engines.scorer.model_dump(mode="json"),
        "seed": cfg.run.seed,
    }
    # The actor pool maps rows_per_task rows per call; the scorer itself still forwards resources.batch_size at a
    # time. With one forward batch per call, sorting by length would only reorder rows inside that batch.
    task_pool = cfg.engines.scorer.resources.model_copy(
        update={"batch_size": rows_per_task(settings, cfg.engines.scorer)}
    )
    shard_dir, stats = run_sharded_map(
        ctx, ctx.input_parts("responses"), DifficultyWorker, kwargs, task_pool, "record_id", "scorer"
    )
    parts = ScoredParts(ctx, visible=settings.truncated != "skip")  # official and score_visible score visible tokens
    published = publish_shards(shard_dir, "record_id", ctx.work / "parts", on_part=parts.account, transform=parts.keep)
    narrow = parts.narrow()

    layout = "chat template" if settings.chat_template else "raw concatenation (official)"
    report_settings = {
        "metric": settings.metric,
        "scorer": f"{settings.scorer}: {spec.name}",
        "layout": layout,
        "truncated records": settings.truncated,
    }
    if settings.metric == "rank":
        report_settings["average"] = "tokens not ranked first (official)" if settings.exclude_top1 else "all tokens"
    (ctx.files_dir / DIFFICULTY_REPORT).write_text(difficulty_markdown(narrow, report_settings), encoding="utf-8")
    values = narrow.column("difficulty").drop_null().to_numpy()
    finite = values[np.isfinite(values)]
    plot_histogram({"records": finite}, ctx.files_dir / DIFFICULTY_PLOT, settings.metric, f"{settings.metric} scores")

    usage = {}
    if settings.metric in MODEL_METRICS:
        usage[spec.name] = {"prompt_tokens": parts.forwarded, "output_tokens": 0, "requests": parts.scored_rows}
    truncated = int(pc.sum(narrow.column("truncated")).as_py() or 0)
    ctx.log(
        f"{len(values)} of {parts.rows} records scored ({settings.metric}); {truncated} truncated "
        f"({settings.truncated}); {len(values) - len(finite)} non-finite"
    )
    return StageOutput(
        parts=published,
        counts={
            "rows": parts.rows,
            "scored": len(values),
            "truncated": truncated,
            "nonfinite": len(values) - len(finite),
            "resumed": stats.resumed,
        },
        models={"scorer": spec.name},
        token_usage=usage,
        extra={**report_settings, "max_length": settings.max_length, "top_p": settings.top_p},
    )


def select_records(ctx: StageContext) -> StageOutput:
    """Keep a difficulty-prioritized, optionally per-instruction stratified subset of the scored records.

    The decision reads compact columns (`ScoredPool`: score, id digest, group, kind); the wide rows are
    then filtered part by part, in row batches, by position, so no table is ever held whole.
    """
    from compeffdist.difficulty.pool import ScoredPool
    from compeffdist.difficulty.report import plot_histogram, selection_markdown
    from compeffdist.difficulty.sampling import select_arrays
    from compeffdist.evaluation.heldout import heldout_mask

    settings = ctx.config.selection
    seed = ctx.config.seed_of("selection")
    parts = ctx.input_parts("difficulty")
    pool = ScoredPool.read(parts)
    # NaN/inf (e.g. an IFD whose perplexity overflowed) are not difficulties: they would sort as the hardest.
    # Unscored records were read as NaN too; the pool counted them apart.
    finite = np.isfinite(pool.difficulty)
    unscored = pool.unscored
    nonfinite = len(pool.difficulty) - unscored - int(finite.sum())
    # Held-out records are never trained on: evaluation measures the student's agreement with the teacher there.
    heldout = heldout_mask(pool.digest, ctx.config.evaluation.heldout)
    held_out = int((finite & heldout).sum())
    usable = np.flatnonzero(finite & ~heldout)
    groups = (pool.group[usable], pool.group_keys) if settings.scope == "inprompt" else None
    selection = select_arrays(
        pool.difficulty[usable], pool.digest[usable], groups, settings.method, settings.rate,
        a=settings.a, mode=settings.mode, seed=seed,
    )  # fmt: skip
    kept = np.zeros(len(pool.difficulty), dtype=bool)
    probability = np.zeros(len(pool.difficulty))
    kept[usable], probability[usable] = selection.kept, selection.probability
    published = _filter_parts(ctx, parts, pool.part_rows, kept, probability)
    selected = int(kept.sum())

    metric = _first(parts, "difficulty_metric")
    report_settings = {
        **settings.model_dump(),
        "seed": seed,
        "difficulty metric": metric,
        "unscored (truncated)": unscored,
        "non-finite difficulty (excluded)": nonfinite,
        "held out for evaluation (excluded)": held_out,
    }
    files = ctx.files_dir
    report = selection_markdown(pool, usable, selection, report_settings)
    (files / SELECTION_REPORT).write_text(report, encoding="utf-8")
    values = pool.difficulty[usable]
    plot_histogram(
        {"pool": values, "selected": values[selection.kept]},
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
        f"selected {selected} of {len(usable)} ({selection.rate:.3f}; target {settings.rate}); "
        f"left out: {unscored} unscored, {nonfinite} non-finite, {held_out} held out"
    )
    return StageOutput(
        parts=published,
        counts={
            "rows": selected,
            "pool": len(usable),
            "selected": selected,
            "unscored": unscored,
            "nonfinite": nonfinite,
            "heldout": held_out,
            "groups": len(selection.groups),
        },
        extra={
            "realized_rate": selection.rate,
            "expected_rate": sum(g.expected for g in selection.groups) / max(len(usable), 1),
            "target_rate": settings.rate,
            "difficulty_metric": metric,
        },
    )


def _first(parts: list[Any], column: str) -> str:
    for part in parts:
        values = part.read_parquet(columns=[column]).column(column)
        if len(values):
            return str(values[0].as_py())
    return "unknown"


def _filter_parts(
    ctx: StageContext, parts: list[Any], part_rows: list[int], kept: np.ndarray, probability: np.ndarray
) -> list[Any]:
    """The kept rows of every part with their inclusion probability, by position, read and written in row batches."""
    out_dir = ctx.work / "parts"
    out_dir.mkdir()
    published = []
    offset = 0
    for index, (part, rows) in enumerate(zip(parts, part_rows, strict=True)):
        target = out_dir / f"part-{index:06d}.parquet"
        with target.parquet_writer() as writer:
            position = offset
            for batch in part.iter_batches(FILTER_BATCH_ROWS):
                mask = kept[position : position + batch.num_rows]
                if mask.any():
                    chosen = batch.filter(pa.array(mask))
                    chosen = chosen.append_column(
                        "selection_probability", pa.array(probability[position : position + batch.num_rows][mask])
                    )
                    writer.write(chosen)
                position += batch.num_rows
        offset += rows
        if target.exists():
            published.append(target)
    return published


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
        sections=("selection", "run.seed", "evaluation.heldout"),
        description="difficulty-prioritized sampling of the training subset",
    ),
]
