"""Teacher generation on vLLM through Ray's batch LLM stack (`ray.data.llm`), with our shards around it.

    rows still to do -> prepare (zero-CPU task: chat-render + tokenize with the model's tokenizer, sampling
    params per row; prompts that do not fit are written as PROMPT_TOO_LONG shards right there)
    -> vLLM engine stage (ray.data.llm: async engine, `max_concurrent_batches` batches in flight per
    replica, one replica per tensor x pipeline parallel placement group, per-row errors kept)
    -> shard writer (zero-CPU task: result columns, one shard per batch, a summary row for the driver)

The engine stage gets token ids, so the chat template is applied by compeffdist.chat exactly as on
every other path (no second BOS), and its own chat-template/tokenize/detokenize stages stay off.
"""

from __future__ import annotations

import json
import time
from functools import cache
from typing import Any

import pyarrow as pa

from compeffdist.chat import encode_prompt
from compeffdist.config import EngineConfig, ModelSpec
from compeffdist.generation.requests import (
    RESULT_SCHEMA,
    ErrorKind,
    GenerationRequest,
    GenerationResult,
    prompt_too_long,
)
from compeffdist.rowmap import IO_TASK_CPUS, write_shard
from compeffdist.storage import Location

# Columns the engine stage reads or adds; they never reach a shard.
ENGINE_COLUMNS = ("tokenized_prompt", "sampling_params")
INFERENCE_ERROR = "__inference_error__"


def processor_config(model: ModelSpec, engine: EngineConfig, seed: int, model_source: str, on_gpu: bool) -> Any:
    """The `vLLMEngineProcessorConfig` for a model served by `engine` (placement from tensor x pipeline parallel)."""
    from ray.data.llm import vLLMEngineProcessorConfig

    from compeffdist.engines.vllm_engine import cpu_binding_env, engine_kwargs

    resources = engine.resources
    kwargs = engine_kwargs(model, engine, seed, model_source, on_gpu)
    kwargs.pop("model")
    if on_gpu:
        # One bundle per engine worker (a GPU each), packed on one node when they fit; the replica's CPUs are shared.
        bundle = {"GPU": 1, "CPU": max(resources.num_cpus_per_actor / resources.engine_workers, 1.0)}
        placement = {"bundle_per_worker": bundle, "strategy": "PACK"}
    else:
        placement = {"bundle_per_worker": {"CPU": resources.num_cpus_per_actor}}
    # Bound here, on the driver: the local single-node default's cores (see cpu_binding_env).
    env = {} if on_gpu else cpu_binding_env(resources)
    return vLLMEngineProcessorConfig(
        model_source=model_source,
        engine_kwargs=kwargs,
        batch_size=resources.batch_size,
        concurrency=(max(1, resources.min_actors), resources.max_actors),
        max_concurrent_batches=resources.max_concurrent_batches,
        placement_group_config=placement,
        runtime_env={"env_vars": env} if env else None,
        should_continue_on_error=True,
        chat_template_stage=False,
        tokenize_stage=False,
        detokenize_stage=False,
        log_engine_metrics=False,
    )


def model_source(model: ModelSpec) -> str:
    """What the engine stage loads on each node: hub ids and object-store URIs as named (ray.data.llm fetches
    them per node); packaged or derived models are made locally first (the local single-node default)."""
    from compeffdist.models.registry import is_local_only, resolve_model

    return resolve_model(model) if is_local_only(model) else model.name


@cache
def _tokenizer(model_json: str) -> Any:
    from compeffdist.models.registry import load_tokenizer

    return load_tokenizer(ModelSpec.model_validate_json(model_json), padding_side="left")


def prepare_batch(
    batch: pa.Table, model_json: str, max_model_len: int, id_column: str, shard_dir: str, seed: int
) -> pa.Table:
    """Request rows -> engine rows (token ids, sampling params); prompts that cannot fit become error shards here."""
    from compeffdist.engines.base import prompt_text

    started = time.time()
    model = ModelSpec.model_validate_json(model_json)
    tokenizer = _tokenizer(model_json)
    rows = batch.to_pylist()
    keep, too_long = [], []
    for row in rows:
        request = GenerationRequest.from_row(row, seed=seed, id_column=id_column)
        ids = encode_prompt(tokenizer, prompt_text(tokenizer, request, model.chat_template_kwargs))
        if len(ids) + request.sampling.max_tokens > max_model_len:
            result = prompt_too_long(request.request_id, len(ids), max_model_len, request.sampling.max_tokens)
            too_long.append(_result_row(row, result, _label(model)))
            continue
        keep.append({**row, "tokenized_prompt": ids, "sampling_params": _sampling(request)})
    if too_long:
        write_shard(Location.of(shard_dir), _table(too_long, batch.schema), id_column, started)
    return pa.Table.from_pylist(keep) if keep else pa.Table.from_pylist([])


def _sampling(request: GenerationRequest) -> dict[str, Any]:
    params: dict[str, Any] = {
        "temperature": request.sampling.temperature,
        "top_p": request.sampling.top_p,
        "max_tokens": request.sampling.max_tokens,
        "seed": request.sampling.seed,
        # A JSON string keeps every row's struct the same shape whatever its schema.
        "structured_outputs": {"json": json.dumps(request.json_schema)} if request.json_schema else None,
    }
    return params


def _label(model: ModelSpec) -> str:
    from compeffdist.engines.base import model_label

    return model_label(model)


def _result_row(row: dict[str, Any], result: GenerationResult, model: str) -> dict[str, Any]:
    carried = {k: v for k, v in row.items() if k not in ENGINE_COLUMNS}
    return {**carried, **result.to_row(model), "attempts": 1}


def _table(rows: list[dict[str, Any]], input_schema: pa.Schema) -> pa.Table:
    fields = [f for f in input_schema if f.name not in ENGINE_COLUMNS]
    return pa.Table.from_pylist(rows, schema=pa.schema(fields + list(RESULT_SCHEMA)))


class ShardWriter:
    """Turns engine-stage rows into result rows and writes them as a shard (a zero-CPU step after the engine)."""

    def __init__(self, model_json: str, id_column: str, shard_dir: str, input_schema: pa.Schema) -> None:
        self.model = _label(ModelSpec.model_validate_json(model_json))
        self.id_column = id_column
        self.shard_dir = Location.of(shard_dir)
        self.input_schema = input_schema

    def __call__(self, batch: pa.Table) -> pa.Table:
        started = time.time()
        # ray.data.llm's default postprocess unwraps every row (failed ones included) into flat columns.
        rows = batch.to_pylist()
        out = [self._result(row) for row in rows]
        finished = [t for t in map(engine_finish_time, rows) if t is not None]
        table = _table(out, self.input_schema)
        return write_shard(self.shard_dir, table, self.id_column, started, max(finished) if finished else None)

    def _result(self, row: dict[str, Any]) -> dict[str, Any]:
        request_id = str(row[self.id_column])
        carried = {f.name: row.get(f.name) for f in self.input_schema if f.name not in ENGINE_COLUMNS}
        if row.get(INFERENCE_ERROR):
            result = GenerationResult.failure(request_id, ErrorKind.ENGINE, str(row[INFERENCE_ERROR]))
        else:
            generated = int(row.get("num_generated_tokens") or 0)
            # The engine stage reports no finish reason: an answer that used its whole budget was cut.
            finish = "length" if generated >= int(row["max_tokens"]) else "stop"
            text = row.get("generated_text") or ""
            result = GenerationResult(request_id, text, int(row.get("num_input_tokens") or 0), generated, finish)
        return {**carried, **result.checked().to_row(self.model), "attempts": 1}


def engine_finish_time(row: dict[str, Any]) -> float | None:
    """Wall-clock time the engine produced a row's last token, from vLLM's request stats.

    Rows reach the shard writer in blocks, later than they finished; progress rates use this instead.
    The stats' token timestamps are the engine core's monotonic clock, so they are placed on the
    wall clock through the request's arrival time (wall clock) and its queued time (monotonic).
    """
    metrics = row.get("metrics") or {}
    arrival, queued, last = (metrics.get(k) for k in ("arrival_time", "queued_ts", "last_token_ts"))
    if not (arrival and queued and last):
        return None
    return float(arrival) + float(last) - float(queued)


def build_vllm_pipeline(
    dataset: Any,
    model: ModelSpec,
    engine: EngineConfig,
    seed: int,
    id_column: str,
    shard_dir: Location,
    input_schema: pa.Schema,
) -> Any:
    """The lazy Ray Dataset of summary rows for `dataset`'s request rows (see the module doc)."""
    from ray.data.llm import build_processor

    resources = engine.resources
    # Decided by the config, not by this (driver) node: the head often has no GPU while the teacher nodes do.
    on_gpu = resources.num_gpus_per_actor > 0
    model_json = model.model_dump_json()
    prepared = dataset.map_batches(
        prepare_batch,
        fn_kwargs={
            "model_json": model_json,
            "max_model_len": engine.max_model_len,
            "id_column": id_column,
            "shard_dir": shard_dir.uri,
            "seed": seed,
        },
        batch_size=resources.batch_size,
        batch_format="pyarrow",
        num_cpus=IO_TASK_CPUS,
    )
    config = processor_config(model, engine, seed, model_source(model), on_gpu)
    light = {"num_cpus": IO_TASK_CPUS}  # row (un)wrapping: it must not wait for CPUs the engine replicas hold
    processor = build_processor(config, preprocess_map_kwargs=light, postprocess_map_kwargs=light)
    return processor(prepared).map_batches(
        ShardWriter,
        fn_constructor_kwargs={
            "model_json": model_json,
            "id_column": id_column,
            "shard_dir": shard_dir.uri,
            "input_schema": input_schema,
        },
        batch_size=resources.batch_size,
        batch_format="pyarrow",
        compute=ray_actor_pool(),
        num_cpus=IO_TASK_CPUS,
    )


def ray_actor_pool() -> Any:
    """One light actor for the shard writer (a class keeps its storage client between batches)."""
    import ray

    return ray.data.ActorPoolStrategy(size=1)
