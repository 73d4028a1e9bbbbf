"""Entry points of generation: a list of requests (instruction construction) or a stream of records (labeling).

Two paths, picked by the engine's backend:
- vLLM: Ray's batch LLM stack (`vllm_pipeline`): the async engine keeps `max_concurrent_batches` batches
  in flight per replica, so one long answer never idles the engine; replicas are placed by tensor x
  pipeline parallel size.
- transformers (and instruction construction on any backend): our own actor (`GenerationWorker`) on a
  Ray Data actor pool, a batch at a time, with typed in-batch retries.
Both write resumable shards through `rowmap` and return its statistics.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

from compeffdist.config import EngineConfig, ModelSpec
from compeffdist.generation.requests import REQUEST_SCHEMA, GenerationRequest
from compeffdist.generation.worker import GenerationWorker, Reasks
from compeffdist.rowmap import MapStats, consume, map_resumable, run_sharded_map, source_dataset
from compeffdist.stage import StageContext
from compeffdist.storage import Location


def generate_table(
    ctx: StageContext,
    requests: list[GenerationRequest],
    model: ModelSpec,
    engine: EngineConfig,
    desc: str,
    extra_columns: pa.Table | None = None,
    reasks: Reasks | None = None,
) -> pa.Table:
    """Generate for every request on a Ray actor pool, resumably; one output row per request_id, in order.

    `extra_columns` (same length as `requests`) are carried through to the output rows. With `reasks`,
    refused answers are asked again inside the same actors (one pool, one model load) and each row
    carries every answer (`answers` column).
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
        "reasks": reasks,
    }
    generated, _ = map_resumable(ctx, table, GenerationWorker, kwargs, engine.resources, "request_id", desc)
    return generated


def generate_stream(
    ctx: StageContext,
    parts: list[Location],
    to_requests: Callable[[pa.Table], pa.Table],
    model: ModelSpec,
    engine: EngineConfig,
    id_column: str,
    desc: str,
) -> tuple[Location, MapStats]:
    """Generate for every row of `parts` (read lazily), resumably; shards land in the stage's work area.

    `to_requests` (light, run in zero-CPU tasks) adds the request columns of REQUEST_SCHEMA, except
    `request_id`: the row's `id_column` is its id.
    """
    seed = ctx.config.run.seed
    if engine.backend == "vllm":
        from compeffdist.generation.vllm_pipeline import build_vllm_pipeline

        src = source_dataset(ctx, parts, id_column, engine.resources.batch_size)
        schema = _request_schema(parts[0], to_requests) if parts else pa.schema([])
        requests = src.dataset.map_batches(to_requests, batch_format="pyarrow", batch_size=None, num_cpus=0)
        summaries = build_vllm_pipeline(requests, model, engine, seed, id_column, src.shard_dir, schema)
        return src.shard_dir, consume(ctx, src, summaries, desc, engine.resources.gpus_per_replica)
    kwargs = {
        "model": model.model_dump(mode="json"),
        "engine": engine.model_dump(mode="json"),
        "seed": seed,
        "id_column": id_column,
    }
    return run_sharded_map(ctx, parts, GenerationWorker, kwargs, engine.resources, id_column, desc, to_requests)


def _request_schema(part: Location, to_requests: Callable[[pa.Table], pa.Table]) -> pa.Schema:
    """The schema of request rows: `to_requests` applied to an empty slice of a part."""
    return to_requests(part.parquet_schema().empty_table()).schema
