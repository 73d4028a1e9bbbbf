"""Resumable row maps on Ray Data: stream rows through an actor pool, write shards as they finish.

Each batch's output is written straight into the stage's work folder as one Parquet shard
(atomic rename) by the task or actor that made it, and the driver receives only a small summary
row, so the driver never holds the results and a killed run keeps every finished shard. On
restart, ids already in shards are filtered out of the input; at the end shards are read back and
de-duplicated by id (a batch redone after an actor died between writing and reporting must not
appear twice).

A map is `source_dataset` (rows still to do) -> any Ray Data transformation that ends in shard
writes and summary rows -> `consume` (progress, statistics). `run_sharded_map` is that with one
actor pool of a worker class; generation builds its vLLM pipeline from the same two ends.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from compeffdist.config import ResourceConfig
from compeffdist.generation.usage import batch_tokens
from compeffdist.idset import IdSet
from compeffdist.progress import Progress
from compeffdist.stage import StageContext
from compeffdist.storage import Location

SHARDS = "shards"
EXPECTED_ROWS = "_expected_rows.json"  # beside the shards: how many rows the map has in all (`status` shows N of M)
MAX_BLOCKS = 1000
# Reading parts and filtering ids are light. They reserve no CPU, so an actor pool that holds every core
# (2 one-CPU actors, or one two-CPU actor, on a 2-core machine) cannot starve its own input and deadlock.
IO_TASK_CPUS = 0


def shard_ids(shard_dir: Location, id_column: str) -> pa.Array:
    """Distinct ids already written by an earlier (possibly killed) run, as one Arrow array."""
    chunks = [shard.read_parquet(columns=[id_column]).column(id_column) for shard in shard_dir.list_files(".parquet")]
    if not chunks:
        return pa.array([], pa.string())
    return pc.unique(pa.chunked_array(chunks).combine_chunks())


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


def write_shard(
    shard_dir: Location, result: pa.Table, id_column: str, started: float, finished_at: float | None = None
) -> pa.Table:
    """Write one batch's rows as a shard named by its ids; return the batch's summary row for the driver.

    `finished_at` is when the batch's work ended, if the producer knows better than "now" (rows that
    left an engine earlier and waited in a queue); it feeds the steady-state rate.
    """
    ids = result.column(id_column).to_pylist()
    name = hashlib.sha1(json.dumps(sorted(ids)).encode()).hexdigest()[:20]
    (shard_dir / f"{name}.parquet").write_parquet(result)
    finished_at = finished_at or time.time()
    prompt_tokens, output_tokens = batch_tokens(result)
    errors = pc.sum(pc.invert(pc.is_null(result.column("error")))).as_py() if "error" in result.column_names else 0
    return pa.table(
        {
            "rows": [result.num_rows],
            "seconds": [finished_at - started],
            "finished_at": [finished_at],
            "prompt_tokens": [prompt_tokens],
            "output_tokens": [output_tokens],
            "errors": [int(errors or 0)],
        }
    )


class ShardingMap:
    """Ray Data callable class: run `worker_cls` on a batch, write the result as a shard, return a summary."""

    def __init__(self, worker_cls: type, worker_kwargs: dict[str, Any], shard_dir: str, id_column: str) -> None:
        self.worker = worker_cls(**worker_kwargs)
        self.shard_dir = Location.of(shard_dir)  # a URI or path: resolved here, with this node's credentials
        self.id_column = id_column

    def __call__(self, batch: pa.Table) -> pa.Table:
        started = time.time()
        return write_shard(self.shard_dir, self.worker(batch), self.id_column, started)


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


@dataclass
class Source:
    """The rows a map still has to do, as a lazy Ray Dataset, and where their shards go."""

    dataset: Any
    shard_dir: Location
    stats: MapStats
    started: float

    @property
    def pending(self) -> int:
        return self.stats.rows - self.stats.resumed


def source_dataset(
    ctx: StageContext, source: pa.Table | list[Location], id_column: str, batch_size: int, shards: str = SHARDS
) -> Source:
    """The input rows not yet in the stage's shards (`ctx.work/<shards>`), read lazily by zero-CPU tasks.

    `source` is a table (pre-split in the driver into blocks of about `batch_size`) or Parquet parts
    read one block per part.
    """
    import ray

    from compeffdist.raysession import ensure_ray

    started = time.time()
    shard_dir = ctx.work / shards
    shard_dir.mkdir()
    done = shard_ids(shard_dir, id_column)
    ensure_ray(ctx.config.ray)
    if isinstance(source, pa.Table):
        total = source.num_rows
        # Pre-split in the driver: a repartition would need CPU tasks that the actor pool may be holding.
        step = max(batch_size, -(-total // MAX_BLOCKS))
        dataset = ray.data.from_arrow([source.slice(i, step) for i in range(0, max(total, 1), step)])
    else:
        total = sum(part.parquet_rows() for part in source)
        # Not ray.data.read_parquet: its file-listing task always asks for a whole CPU, which an actor pool
        # holding every core never frees. One part per block, read lazily by a task that reserves none.
        indexes = [{"part": index} for index in range(len(source))]  # blocks made here: no read task at all
        dataset = ray.data.from_items(indexes, override_num_blocks=max(1, len(source))).map_batches(
            _read_parts, fn_kwargs={"parts": source}, batch_size=1, batch_format="pyarrow", num_cpus=IO_TASK_CPUS
        )
    (shard_dir / EXPECTED_ROWS).write_text(json.dumps({"rows": total}))
    if len(done):
        ctx.log(f"resuming: {len(done)} of {total} rows already in shards, {total - len(done)} to go")
        dataset = dataset.map_batches(
            _drop_done,
            fn_kwargs={"done": done, "id_column": id_column},
            batch_format="pyarrow",
            batch_size=None,
            num_cpus=IO_TASK_CPUS,
        )
    return Source(dataset, shard_dir, MapStats(rows=total, resumed=len(done)), started)


def consume(ctx: StageContext, source: Source, summaries: Any, desc: str, gpus_per_actor: float) -> MapStats:
    """Run the map by iterating its summary rows: progress lines, statistics, actor time accounted to the stage."""
    stats = source.stats
    if source.pending > 0:
        progress = Progress(ctx, desc, total=source.pending)
        for summary in summaries.iter_rows():
            progress.update(summary)
        progress.finish()
        stats.output_tokens, stats.errors = progress.tokens, progress.errors
        stats.actor_seconds = progress.actor_seconds
        stats.steady_tokens_per_second = progress.steady_tokens_per_second
        ctx.add_actor_time(stats.actor_seconds, gpus_per_actor)
    stats.wall_seconds = time.time() - source.started
    return stats


def run_sharded_map(
    ctx: StageContext,
    source: pa.Table | list[Location],
    worker_cls: type,
    worker_kwargs: dict[str, Any],
    pool: ResourceConfig,
    id_column: str,
    desc: str,
    prepare: Callable[[pa.Table], pa.Table] | None = None,
) -> tuple[Location, MapStats]:
    """Stream `source` (a table, or Parquet parts read lazily) through `worker_cls` on a Ray actor pool.

    `prepare` (optional, light, zero-CPU) turns input rows into the worker's input rows first.
    Shards go to the stage's work area on the run's storage. Rows whose id is already in a shard
    are skipped. Returns the shard folder and run statistics.
    """
    import ray

    src = source_dataset(ctx, source, id_column, pool.batch_size)
    dataset = src.dataset
    if prepare is not None:
        dataset = dataset.map_batches(prepare, batch_format="pyarrow", batch_size=None, num_cpus=IO_TASK_CPUS)
    summaries = dataset.map_batches(
        ShardingMap,
        fn_constructor_kwargs={
            "worker_cls": worker_cls,
            "worker_kwargs": worker_kwargs,
            "shard_dir": src.shard_dir.uri,
            "id_column": id_column,
        },
        batch_size=pool.batch_size,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(min_size=max(1, pool.min_actors), max_size=pool.max_actors),
        num_cpus=pool.num_cpus_per_actor,
        num_gpus=pool.num_gpus_per_actor,
        # Dead actors are restarted and their batches retried without limit: Ray 2.60's actor-pool default
        # (actor_pool_map_operator.py). Setting it here would only add a deprecation warning to every run
        # (ray_remote_args goes in 2.64); tests/integration/test_fault_tolerance.py kills an actor and
        # fails if that default changes. Shards make the retries idempotent.
    )
    return src.shard_dir, consume(ctx, src, summaries, desc, pool.num_gpus_per_actor)


def _read_parts(batch: pa.Table, parts: list[Location]) -> pa.Table:
    """The Parquet parts whose indexes are in `batch`."""
    return pa.concat_tables([parts[index].read_parquet() for index in batch.column("part").to_pylist()])


def _drop_done(batch: pa.Table, done: pa.Array, id_column: str) -> pa.Table:
    """Filter out rows whose id is already in a shard."""
    return batch.filter(pc.invert(pc.is_in(batch.column(id_column), value_set=done)))


def publish_shards(
    shard_dir: Location,
    id_column: str,
    out_dir: Location,
    on_part: Callable[[pa.Table], None] | None = None,
    drop: tuple[str, ...] = (),
    transform: Callable[[pa.Table], pa.Table] | None = None,
) -> list[Location]:
    """Rewrite shards as part files, one shard at a time, dropping ids already seen (bounded memory).

    `drop` names working columns that do not belong in the artifact; `transform` turns a shard's new rows
    into the part's rows (e.g. moving failed rows to rejects); `on_part` then sees each part's rows while
    they are in memory (token usage, report columns), so nobody reads them again.
    """
    seen = IdSet()  # 8 bytes an id: the driver's memory must not grow with the record count
    parts = []
    for index, shard in enumerate(shard_dir.list_files(".parquet")):
        table = shard.read_parquet()
        table = table.drop_columns([name for name in drop if name in table.column_names])
        new = seen.first_seen(table.column(id_column).to_pylist())
        part_table = table.filter(pa.array(new)) if not new.all() else table
        if transform is not None and new.any():
            part_table = transform(part_table)
        if part_table.num_rows and new.any():
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
    pool: ResourceConfig,
    id_column: str,
    desc: str,
) -> tuple[pa.Table, MapStats]:
    """Run `worker_cls(**worker_kwargs)(batch) -> table` over `rows` on a Ray actor pool, resumably.

    The worker's output must keep `id_column`. Returns one output row per input id, in input order
    (for outputs that fit in memory; large stages use run_sharded_map + publish_shards), and the
    map's statistics (rows resumed from earlier shards among them).
    """
    shard_dir, stats = run_sharded_map(ctx, rows, worker_cls, worker_kwargs, pool, id_column, desc)
    table = read_shards(shard_dir, id_column)
    if table is None:
        return rows.slice(0, 0), stats
    order = {value: i for i, value in enumerate(rows.column(id_column).to_pylist())}
    positions = [order.get(v, -1) for v in table.column(id_column).to_pylist()]
    table = table.append_column("__order", pa.array(positions, pa.int64()))
    table = table.filter(pc.greater_equal(table.column("__order"), 0)).sort_by("__order").drop_columns("__order")
    return table, stats
