"""GPU check of the training backend: the project's DeepSpeedBackend on NCCL in bf16, ZeRO-0/2/3 and ZeRO-2 with
the optimizer offloaded (the 40/48 GB config), and the chunked loss (training/loss.py) vs the model's own
full-vocabulary loss: tokens/s and peak GPU memory side by side.

For a GPU node without Ray (the device machines lent here have torch and transformers but no Ray):
one process, a one-rank NCCL group set up the way Ray Train would, the DeepSpeed config built by
`build_deepspeed_config` from a `TrainingConfig(use_gpu=True)`, the same `ChunkedLossModel` the Ray
Train workers wrap the student in, a random Llama with Llama 3's 128k vocabulary built from a config,
and a fixed batch repeated so the loss must fall: every position labelled (the chunked loss's worst
case), or with --labelled-fraction the last fraction of each row, as an SFT response after its prompt.
Prints tokens/s and peak memory per variant and the ratios to ZeRO-2 with the chunked loss,
and writes the JSON to --out. The multi-GPU scaling figures need `bench/bench_training.py` on a Ray
GPU cluster.

    python bench/gpu_check_deepspeed.py [--steps 20] [--hidden 1024] [--layers 8] [--seq-len 2048]
        [--labelled-fraction 1.0] [--only VARIANT ...] [--out DIR]
"""

from __future__ import annotations

import argparse
import gc
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


def run_variant(name: str, zero_stage: int, chunk: int | None, offload: bool, args: argparse.Namespace) -> dict:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from compeffdist.config import TrainingConfig
    from compeffdist.training.backends import DeepSpeedBackend
    from compeffdist.training.deepspeed_config import build_deepspeed_config
    from compeffdist.training.loss import ChunkedLossModel

    training = TrainingConfig(
        use_gpu=True, bf16=True, zero_stage=zero_stage, offload_optimizer=offload, num_workers=1,
        micro_batch_size=args.micro_batch, gradient_accumulation_steps=1, learning_rate=1e-3, warmup_steps=0,
        lr_scheduler="constant", loss_chunk_tokens=chunk, gradient_checkpointing=True,
    )  # fmt: skip
    gc.collect()
    torch.cuda.empty_cache()
    baseline = torch.cuda.memory_allocated()  # what earlier variants left behind is not this variant's
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=args.hidden * 3,
        num_hidden_layers=args.layers, num_attention_heads=args.hidden // 64, num_key_value_heads=args.hidden // 64,
        max_position_embeddings=args.seq_len, tie_word_embeddings=False,
    )  # fmt: skip
    model = LlamaForCausalLM(config)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    backend = DeepSpeedBackend(
        ChunkedLossModel(model, chunk), training, build_deepspeed_config(training), args.steps, "nccl", module=model
    )
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(0, args.vocab, (args.micro_batch, args.seq_len), generator=generator)
    labels = ids.clone()
    labels[:, : int(args.seq_len * (1 - args.labelled_fraction))] = -100  # the "prompt": no loss taken
    batch = {"input_ids": ids, "labels": labels, "attention_mask": torch.ones_like(ids)}
    torch.cuda.reset_peak_memory_stats()
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
        "variant": name, "zero_stage": backend.zero_stage, "loss_chunk_tokens": chunk, "offload_optimizer": offload,
        "param_dtype": str(next(backend.module.parameters()).dtype), "tokens_per_s": round(tokens_per_s, 1),
        "first_loss": round(losses[0], 4), "last_loss": round(losses[-1], 4),
        "peak_gib": round((torch.cuda.max_memory_allocated() - baseline) / 2**30, 2),
    }  # fmt: skip
    print(result, flush=True)
    del backend, model
    torch.cuda.empty_cache()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--micro-batch", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=128256)
    parser.add_argument("--labelled-fraction", type=float, default=1.0, help="share of positions with a loss")
    parser.add_argument("--only", nargs="*", default=None, help="variant names to run (default: all)")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()

    import torch

    _init_nccl()
    variants = [
        ("zero2_chunked", 2, 1024, False), ("zero2_full_logits", 2, None, False), ("zero0_chunked", 0, 1024, False),
        ("zero3_chunked", 3, 1024, False), ("zero2_offload_chunked", 2, 512, True),
    ]  # fmt: skip
    rows = []
    for name, stage, chunk, offload in variants:
        if args.only is not None and name not in args.only:
            continue
        try:
            rows.append(run_variant(name, stage, chunk, offload, args))
        except Exception as exc:  # one variant failing (out of memory, a JIT build) must not lose the others
            print(f"{name} failed: {exc!r}", flush=True)
            rows.append({"variant": name, "error": repr(exc)[:500]})
            torch.cuda.empty_cache()
    base = rows[0].get("tokens_per_s")
    for row in rows:
        if "tokens_per_s" in row and base:
            row["vs_zero2_chunked"] = round(row["tokens_per_s"] / base, 3)
            row["loss_fell"] = row["last_loss"] < row["first_loss"]
    payload = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "settings": vars(args) | {
        "out": str(args.out)}, "rows": rows}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.labelled_fraction == 1.0 else f"-labelled{args.labelled_fraction:g}"
    (args.out / f"gpu_check_deepspeed{suffix}.json").write_text(json.dumps(payload, indent=2))
    print(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
