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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from compeffdist.chat import MESSAGES_TYPE
from compeffdist.config import EngineConfig, ModelSpec
from compeffdist.engines.base import GenerationRequest, GenerationResult
from compeffdist.progress import Progress
from compeffdist.stage import StageContext
from compeffdist.storage import Location

SHARDS = "shards"
MAX_BLOCKS = 1000
# Reading parts and filtering ids are light. They reserve no CPU, so an actor pool that holds every core
# (2 one-CPU actors, or one two-CPU actor, on a 2-core machine) cannot starve its own input and deadlock.
IO_TASK_CPUS = 0


def shard_ids(shard_dir: Location, id_column: str) -> set[str]:
    """Ids already written by an earlier (possibly killed) run."""
    done: set[str] = set()
    for shard in shard_dir.list_files(".parquet"):
        done.update(shard.read_parquet(columns=[id_column]).column(id_column).to_pylist())
    return done


def read_shards(shard_dir: Location, id_column: str) -> pa.Table | None:
    """All shard rows, first occurrence of each id kept."""
    shards = shard_dir.list_files(".parquet")
    if not shards:
        return None
    table = pa.concat_tables([s.read_parquet() for s in shards], promote_options="default")
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
        self.shard_dir = Location.of(shard_dir)  # a URI or path: resolved here, with this node's credentials
        self.id_column = id_column

    def __call__(self, batch: pa.Table) -> pa.Table:
        started = time.time()
        result: pa.Table = self.worker(batch)
        ids = result.column(self.id_column).to_pylist()
        name = hashlib.sha1(json.dumps(sorted(ids)).encode()).hexdigest()[:20]
        (self.shard_dir / f"{name}.parquet").write_parquet(result)
        finished_at = time.time()
        summary: dict[str, list[Any]] = {
            "rows": [result.num_rows], "seconds": [finished_at - started], "finished_at": [finished_at]
        }  # fmt: skip
        for column in ("prompt_tokens", "output_tokens"):
            values = result.column(column).to_pylist() if column in result.column_names else []
            summary[column] = [int(sum(v or 0 for v in values))]
        errors = result.column("error").to_pylist() if "error" in result.column_names else []
        summary["errors"] = [sum(1 for e in errors if e)]
        return pa.table(summary)


@dataclass
class MapStats:
    """What a sharded map did in this process (rows skipped thanks to earlier shards included)."""

    rows: int = 0
    resumed: int = 0
    output_tokens: int = 0
    errors: int = 0
    actor_seconds: float = 0.0
    wall_seconds: float = 0.0
    steady_tokens_per_second: float | None = None


def run_sharded_map(
    ctx: StageContext,
    source: pa.Table | list[Location],
    worker_cls: type,
    worker_kwargs: dict[str, Any],
    engine: EngineConfig,
    id_column: str,
    desc: str,
) -> tuple[Location, MapStats]:
    """Stream `source` (a table, or Parquet parts read lazily) through `worker_cls` on a Ray actor pool.

    Shards go to the stage's work area on the run's storage. Rows whose id is already in a shard
    are skipped. Returns the shard folder and run statistics.
    """
    import ray

    from compeffdist.raysession import ensure_ray

    started = time.time()
    shard_dir = ctx.work / SHARDS
    shard_dir.mkdir()
    done = shard_ids(shard_dir, id_column)
    ensure_ray(ctx.config.ray)
    if isinstance(source, pa.Table):
        total = source.num_rows
        # Pre-split in the driver: a repartition would need CPU tasks that the actor pool may be holding.
        step = max(engine.batch_size, -(-total // MAX_BLOCKS))
        dataset = ray.data.from_arrow([source.slice(i, step) for i in range(0, max(total, 1), step)])
    else:
        total = sum(part.parquet_rows() for part in source)
        # Not ray.data.read_parquet: its file-listing task always asks for a whole CPU, which an actor pool
        # holding every core never frees. One part per block, read lazily by a task that reserves none.
        indexes = [{"part": index} for index in range(len(source))]  # blocks made here: no read task at all
        dataset = ray.data.from_items(indexes, override_num_blocks=max(1, len(source))).map_batches(
            _read_parts, fn_kwargs={"parts": source}, batch_size=1, batch_format="pyarrow", num_cpus=IO_TASK_CPUS
        )
    stats = MapStats(rows=total, resumed=len(done))
    if done:
        ctx.log(f"resuming: {len(done)} of {total} rows already in shards, {total - len(done)} to go")
        done_ids = pa.array(sorted(done), pa.string())
        dataset = dataset.map_batches(
            _drop_done,
            fn_kwargs={"done": done_ids, "id_column": id_column},
            batch_format="pyarrow",
            batch_size=None,
            num_cpus=IO_TASK_CPUS,
        )
    if total - len(done) > 0:
        mapped = dataset.map_batches(
            ShardingMap,
            fn_constructor_kwargs={
                "worker_cls": worker_cls,
                "worker_kwargs": worker_kwargs,
                "shard_dir": shard_dir.uri,
                "id_column": id_column,
            },
            batch_size=engine.batch_size,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(min_size=max(1, engine.min_actors), max_size=engine.max_actors),
            num_cpus=engine.num_cpus_per_actor,
            num_gpus=engine.num_gpus_per_actor,
            # Dead actors are restarted and their batches retried without limit: Ray 2.60's actor-pool default
            # (actor_pool_map_operator.py). Setting it here would only add a deprecation warning to every run
            # (ray_remote_args goes in 2.64); tests/integration/test_fault_tolerance.py kills an actor and
            # fails if that default changes. Shards make the retries idempotent.
        )
        progress = Progress(ctx, desc, total=total - len(done))
        for summary in mapped.iter_rows():
            progress.update(summary)
        progress.finish()
        stats.output_tokens, stats.errors = progress.tokens, progress.errors
        stats.actor_seconds = progress.actor_seconds
        stats.steady_tokens_per_second = progress.steady_tokens_per_second
        ctx.add_actor_time(stats.actor_seconds, engine.num_gpus_per_actor)
    stats.wall_seconds = time.time() - started
    return shard_dir, stats


def _read_parts(batch: pa.Table, parts: list[Location]) -> pa.Table:
    """The Parquet parts whose indexes are in `batch`."""
    return pa.concat_tables([parts[index].read_parquet() for index in batch.column("part").to_pylist()])


def _drop_done(batch: pa.Table, done: pa.Array, id_column: str) -> pa.Table:
    """Filter out rows whose id is already in a shard."""
    import pyarrow.compute as pc

    return batch.filter(pc.invert(pc.is_in(batch.column(id_column), value_set=done)))


def publish_shards(
    shard_dir: Location, id_column: str, out_dir: Location, on_part: Callable[[pa.Table], None] | None = None
) -> list[Location]:
    """Rewrite shards as part files, one shard at a time, dropping ids already seen (bounded memory).

    `on_part` sees each part's rows while they are in memory (token usage, rejects), so nobody reads them again.
    """
    seen: set[str] = set()
    parts = []
    for index, shard in enumerate(shard_dir.list_files(".parquet")):
        table = shard.read_parquet()
        ids = table.column(id_column).to_pylist()
        keep = [i for i, value in enumerate(ids) if value not in seen]
        seen.update(ids)
        if keep:
            part_table = table.take(keep) if len(keep) != len(ids) else table
            part = out_dir / f"shard-{index:06d}.parquet"
            part.write_parquet(part_table)
            parts.append(part)
            if on_part is not None:
                on_part(part_table)
    return parts


def map_resumable(
    ctx: StageContext,
    rows: pa.Table,
    worker_cls: type,
    worker_kwargs: dict[str, Any],
    engine: EngineConfig,
    id_column: str,
    desc: str,
) -> tuple[pa.Table, MapStats]:
    """Run `worker_cls(**worker_kwargs)(batch) -> table` over `rows` on a Ray actor pool, resumably.

    The worker's output must keep `id_column`. Returns one output row per input id, in input order
    (for outputs that fit in memory; large stages use run_sharded_map + publish_shards), and the
    map's statistics (rows resumed from earlier shards among them).
    """
    import pyarrow.compute as pc

    shard_dir, stats = run_sharded_map(ctx, rows, worker_cls, worker_kwargs, engine, id_column, desc)
    table = read_shards(shard_dir, id_column)
    if table is None:
        return rows.slice(0, 0), stats
    order = {value: i for i, value in enumerate(rows.column(id_column).to_pylist())}
    positions = [order.get(v, -1) for v in table.column(id_column).to_pylist()]
    table = table.append_column("__order", pa.array(positions, pa.int64()))
    table = table.filter(pc.greater_equal(table.column("__order"), 0)).sort_by("__order").drop_columns("__order")
    return table, stats


class GenerationWorker:
    """Loads an engine once per actor; generates a batch of request rows with bounded per-row retries."""

    def __init__(self, model: dict[str, Any], engine: dict[str, Any], seed: int) -> None:
        from compeffdist.engines import create_engine

        self.engine_config = EngineConfig.model_validate(engine)
        self.engine = create_engine(ModelSpec.model_validate(model), self.engine_config, seed=seed)
        self.seed = seed

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        # A row's own seed (e.g. one per teacher re-ask) wins; the run seed only fills rows that carry none.
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
    generated, _ = map_resumable(ctx, table, GenerationWorker, kwargs, engine, "request_id", desc)
    return generated


REQUEST_SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("messages", MESSAGES_TYPE),
        ("prompt", pa.string()),
        ("max_tokens", pa.int64()),
        ("temperature", pa.float64()),
        ("top_p", pa.float64()),
        ("seed", pa.int64()),  # per request (SamplingConfig.seed); null: the worker's run seed
        ("json_schema", pa.string()),
    ]
)


def token_usage(table: pa.Table, into: dict[str, dict[str, int]] | None = None) -> dict[str, dict[str, int]]:
    """Prompt/output token totals and request counts per model (accumulated into `into` if given)."""
    usage: dict[str, dict[str, int]] = {} if into is None else into
    if table.num_rows == 0 or "model" not in table.column_names:
        return usage
    for row in table.select(["model", "prompt_tokens", "output_tokens"]).to_pylist():
        entry = usage.setdefault(row["model"] or "unknown", {"prompt_tokens": 0, "output_tokens": 0, "requests": 0})
        entry["prompt_tokens"] += int(row["prompt_tokens"] or 0)
        entry["output_tokens"] += int(row["output_tokens"] or 0)
        entry["requests"] += 1
    return usage
