"""GPU check of the training backend: the project's DeepSpeedBackend on NCCL, bf16 vs fp32, ZeRO-2 vs ZeRO-3.

For a GPU node without Ray (the device machines lent here have torch and transformers but no Ray):
one process, a one-rank NCCL group set up the way Ray Train would, the DeepSpeed config built by
`build_deepspeed_config` from a `TrainingConfig(use_gpu=True)`, a random Llama built from a config,
and a fixed batch repeated so the loss must fall. Prints tokens/s per variant and the ratios to ZeRO-2
bf16, and writes the JSON to --out. The multi-GPU scaling figures need `bench/bench_training.py` on a
Ray GPU cluster.

    python bench/gpu_check_deepspeed.py [--steps 30] [--hidden 1024] [--layers 8] [--seq-len 1024] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def _init_nccl() -> None:
    import torch.distributed as dist

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29517")
    for key, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1")):
        os.environ.setdefault(key, value)
    if not dist.is_initialized():
        dist.init_process_group("nccl", rank=0, world_size=1)


def run_variant(name: str, zero_stage: int, bf16: bool, args: argparse.Namespace) -> dict:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from compeffdist.config import TrainingConfig
    from compeffdist.training.backends import DeepSpeedBackend
    from compeffdist.training.deepspeed_config import build_deepspeed_config

    training = TrainingConfig(
        use_gpu=True, bf16=bf16, zero_stage=zero_stage, num_workers=1, micro_batch_size=args.micro_batch,
        gradient_accumulation_steps=1, learning_rate=1e-3, warmup_steps=0, lr_scheduler="constant",
    )  # fmt: skip
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=args.hidden * 3,
        num_hidden_layers=args.layers, num_attention_heads=args.hidden // 64, num_key_value_heads=args.hidden // 64,
        max_position_embeddings=args.seq_len,
    )  # fmt: skip
    model = LlamaForCausalLM(config)
    backend = DeepSpeedBackend(model, training, build_deepspeed_config(training), lambda step: 1.0, "nccl")
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(0, args.vocab, (args.micro_batch, args.seq_len), generator=generator)
    batch = {"input_ids": ids, "labels": ids.clone(), "attention_mask": torch.ones_like(ids)}
    losses, times = [], []
    for _ in range(args.steps):
        torch.cuda.synchronize()
        started = time.perf_counter()
        losses.append(backend.train_micro_batch(batch))
        torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    steady = times[args.warmup :]
    tokens_per_s = args.micro_batch * args.seq_len * len(steady) / sum(steady)
    result = {
        "variant": name, "zero_stage": backend.zero_stage, "bf16": bf16,
        "param_dtype": str(next(backend.module.parameters()).dtype), "tokens_per_s": round(tokens_per_s, 1),
        "first_loss": round(losses[0], 4), "last_loss": round(losses[-1], 4),
        "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
    }  # fmt: skip
    print(result, flush=True)
    del backend, model
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--micro-batch", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=1024)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()

    import torch

    _init_nccl()
    variants = [("zero2_bf16", 2, True), ("zero3_bf16", 3, True), ("zero2_fp32", 2, False)]
    rows = [run_variant(name, stage, bf16, args) for name, stage, bf16 in variants]
    base = rows[0]["tokens_per_s"]
    for row in rows:
        row["vs_zero2_bf16"] = round(row["tokens_per_s"] / base, 3)
        row["loss_fell"] = row["last_loss"] < row["first_loss"]
    payload = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "settings": vars(args) | {
        "out": str(args.out)}, "rows": rows}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check_deepspeed.json").write_text(json.dumps(payload, indent=2))
    print(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
