"""Resumable row maps on Ray Data: stream rows through an actor pool, write shards as they finish.

Each actor writes its output batch straight into the stage's work folder as one Parquet shard
(atomic rename) and hands the driver only a small summary row, so the driver never holds the
results and a killed run keeps every finished shard. On restart, record ids already in shards
are filtered out of the input; at the end shards are read back and de-duplicated by id (a batch
redone after an actor died between writing and reporting must not appear twice).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from compeffdist.artifacts import write_parquet_atomic
from compeffdist.config import EngineConfig, ModelSpec
from compeffdist.engines.base import GenerationRequest, GenerationResult
from compeffdist.progress import Progress
from compeffdist.stage import StageContext

SHARDS = "shards"


def shard_ids(shard_dir: Path, id_column: str) -> set[str]:
    """Ids already written by an earlier (possibly killed) run."""
    done: set[str] = set()
    for path in sorted(shard_dir.glob("*.parquet")):
        done.update(pq.read_table(path, columns=[id_column]).column(id_column).to_pylist())
    return done


def read_shards(shard_dir: Path, id_column: str) -> pa.Table | None:
    """All shard rows, first occurrence of each id kept."""
    paths = sorted(shard_dir.glob("*.parquet"))
    if not paths:
        return None
    table = pa.concat_tables([pq.read_table(p) for p in paths], promote_options="default")
    seen: set[str] = set()
    keep = []
    for index, value in enumerate(table.column(id_column).to_pylist()):
        if value not in seen:
            seen.add(value)
            keep.append(index)
    return table.take(keep) if len(keep) != table.num_rows else table


class ShardingMap:
    """Ray Data callable class: run `worker_cls` on a batch, write the result as a shard, return a summary."""

    def __init__(self, worker_cls: type, worker_kwargs: dict[str, Any], shard_dir: str, id_column: str) -> None:
        self.worker = worker_cls(**worker_kwargs)
        self.shard_dir = Path(shard_dir)
        self.id_column = id_column

    def __call__(self, batch: pa.Table) -> pa.Table:
        started = time.time()
        result: pa.Table = self.worker(batch)
        ids = result.column(self.id_column).to_pylist()
        name = hashlib.sha1(json.dumps(sorted(ids)).encode()).hexdigest()[:20]
        write_parquet_atomic(self.shard_dir / f"{name}.parquet", result)
        summary: dict[str, list[Any]] = {"rows": [result.num_rows], "seconds": [time.time() - started]}
        for column in ("prompt_tokens", "output_tokens"):
            values = result.column(column).to_pylist() if column in result.column_names else []
            summary[column] = [int(sum(v or 0 for v in values))]
        errors = result.column("error").to_pylist() if "error" in result.column_names else []
        summary["errors"] = [sum(1 for e in errors if e)]
        return pa.table(summary)


def map_resumable(
    ctx: StageContext,
    rows: pa.Table,
    worker_cls: type,
    worker_kwargs: dict[str, Any],
    engine: EngineConfig,
    id_column: str,
    desc: str,
) -> pa.Table:
    """Run `worker_cls(**worker_kwargs)(batch) -> table` over `rows` on a Ray actor pool, resumably.

    The worker's output must keep `id_column`. Returns one output row per input id, in input order.
    """
    import pyarrow.compute as pc
    import ray

    from compeffdist.raysession import ensure_ray

    shard_dir = ctx.work_dir / SHARDS
    shard_dir.mkdir(parents=True, exist_ok=True)
    done = shard_ids(shard_dir, id_column)
    pending = rows.filter(pc.invert(pc.is_in(rows.column(id_column), pa.array(sorted(done), pa.string()))))
    if done:
        ctx.log(f"resuming: {len(done)} of {rows.num_rows} rows already in shards, {pending.num_rows} to go")
    if pending.num_rows:
        ensure_ray(ctx.config.ray)
        blocks = max(1, min(pending.num_rows // engine.batch_size, 1000))
        dataset = ray.data.from_arrow(pending).repartition(blocks)
        mapped = dataset.map_batches(
            ShardingMap,
            fn_constructor_kwargs={
                "worker_cls": worker_cls,
                "worker_kwargs": worker_kwargs,
                "shard_dir": str(shard_dir),
                "id_column": id_column,
            },
            batch_size=engine.batch_size,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(min_size=max(1, engine.min_actors), max_size=engine.max_actors),
            num_cpus=engine.num_cpus_per_actor,
            num_gpus=engine.num_gpus_per_actor,
            # Ray Data restarts dead actors and retries their batches by default; shards make retries idempotent.
        )
        progress = Progress(ctx, desc, total=pending.num_rows)
        for summary in mapped.iter_rows():
            progress.update(summary)
        progress.finish()
    table = read_shards(shard_dir, id_column)
    if table is None:
        return rows.slice(0, 0)
    order = {value: i for i, value in enumerate(rows.column(id_column).to_pylist())}
    positions = [order.get(v, -1) for v in table.column(id_column).to_pylist()]
    table = table.append_column("__order", pa.array(positions, pa.int64()))
    table = table.filter(pc.greater_equal(table.column("__order"), 0)).sort_by("__order").drop_columns("__order")
    return table


class GenerationWorker:
    """Loads an engine once per actor; generates a batch of request rows with bounded per-row retries."""

    def __init__(self, model: dict[str, Any], engine: dict[str, Any], seed: int) -> None:
        from compeffdist.engines import create_engine

        self.engine_config = EngineConfig.model_validate(engine)
        self.engine = create_engine(ModelSpec.model_validate(model), self.engine_config, seed=seed)
        self.seed = seed

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        requests = [GenerationRequest.from_row(row, seed=self.seed) for row in rows]
        results = {r.request_id: _flag_empty(r) for r in self.engine.generate(requests)}
        attempts = dict.fromkeys(results, 1)
        for _ in range(self.engine_config.max_retries):
            failed = [q for q in requests if _retryable(results[q.request_id].error)]
            if not failed:
                break
            for result in self.engine.generate(failed):
                results[result.request_id] = _flag_empty(result)
                attempts[result.request_id] += 1
        out = []
        for row, request in zip(rows, requests, strict=True):
            result = results[request.request_id]
            out.append({**row, **result.to_row(self.engine.model_name), "attempts": attempts[request.request_id]})
        return pa.Table.from_pylist(out)


def _flag_empty(result: GenerationResult) -> GenerationResult:
    if not result.error and not result.text.strip():
        result.error = "empty output"
    return result


def _retryable(error: str | None) -> bool:
    """Prompts that do not fit will never fit; anything else (engine hiccup, empty output) may pass on retry."""
    return bool(error) and "limit is" not in str(error)


def generate_resumable(
    ctx: StageContext,
    requests: list[GenerationRequest],
    model: ModelSpec,
    engine: EngineConfig,
    desc: str,
    extra_columns: pa.Table | None = None,
) -> pa.Table:
    """Generate for every request on a Ray actor pool; one output row per request_id (see module doc).

    `extra_columns` (same length as `requests`) are carried through to the output rows.
    """
    ids = [r.request_id for r in requests]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{desc}: request ids are not unique")
    table = pa.Table.from_pylist([r.to_row() for r in requests], schema=REQUEST_SCHEMA)
    if extra_columns is not None:
        for name in extra_columns.column_names:
            table = table.append_column(name, extra_columns.column(name))
    kwargs = {
        "model": model.model_dump(mode="json"),
        "engine": engine.model_dump(mode="json"),
        "seed": ctx.config.run.seed,
    }
    return map_resumable(ctx, table, GenerationWorker, kwargs, engine, "request_id", desc)


REQUEST_SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("messages", pa.string()),
        ("prompt", pa.string()),
        ("max_tokens", pa.int64()),
        ("temperature", pa.float64()),
        ("top_p", pa.float64()),
        ("json_schema", pa.string()),
    ]
)


def token_usage(table: pa.Table) -> dict[str, dict[str, int]]:
    """Prompt/output token totals per model, for the stage manifest."""
    usage: dict[str, dict[str, int]] = {}
    if table.num_rows == 0 or "model" not in table.column_names:
        return usage
    for row in table.select(["model", "prompt_tokens", "output_tokens"]).to_pylist():
        entry = usage.setdefault(row["model"] or "unknown", {"prompt_tokens": 0, "output_tokens": 0, "requests": 0})
        entry["prompt_tokens"] += int(row["prompt_tokens"] or 0)
        entry["output_tokens"] += int(row["output_tokens"] or 0)
        entry["requests"] += 1
    return usage
