"""The function every Ray Train worker runs: load the student, train on its data shard, checkpoint, export.

Data order: Ray Data splits the dataset equally across workers (equal split, order preserved, no
locality), so a worker reads and holds only its shard. It sorts the shard by row index, which makes
its order independent of how blocks streamed in, and trains each epoch on a permutation seeded by
(seed, epoch, rank) (`plan.epoch_order`): a real reshuffle every epoch.

Resuming: a checkpoint stores the optimizer step reached. The step gives the epoch and how many
micro batches of it were trained; the resumed worker recomputes the same epoch order, skips
exactly those micro batches and continues with the same data and step count.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compeffdist.training.packing import ROW_INDEX, SEQUENCE_COLUMNS

STATE_FILE = "train_state.json"
METRICS_FILE = "metrics.jsonl"
MODEL_DIR = "model"


@dataclass
class WorkerState:
    """What survives a restart besides the backend's weights and optimizer."""

    step: int = 0
    finished: bool = False
    resumed_from: int = 0  # the step this worker group started from (a restart's checkpoint, or 0)
    metrics: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Window:
    """Sums since the last metrics row (this worker only; rows all-reduce them)."""

    loss_sum: float = 0.0
    micro_batches: int = 0
    tokens: int = 0
    loss_tokens: int = 0
    lr: float = float("nan")  # the learning rate of the window's last optimizer step
    started: float = field(default_factory=time.perf_counter)


def load_student(student: Any, training: Any) -> Any:
    """The student in fp32 (DeepSpeed casts to bf16 itself), with activation checkpointing and LoRA if set."""
    import torch
    from transformers import AutoModelForCausalLM

    from compeffdist.models.registry import resolve_model

    kwargs: dict[str, Any] = {"dtype": torch.float32}
    if student.attn_implementation:
        kwargs["attn_implementation"] = student.attn_implementation
    model = AutoModelForCausalLM.from_pretrained(
        resolve_model(student), trust_remote_code=student.trust_remote_code, **kwargs
    )
    if training.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if training.lora is not None:
        from peft import LoraConfig, get_peft_model

        lora = training.lora
        model = get_peft_model(
            model,
            LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                       target_modules=list(lora.target_modules), task_type="CAUSAL_LM"),
        )  # fmt: skip
    model.train()
    return model


def train_loop_per_worker(config: dict[str, Any]) -> None:
    """Ray Train entry point; `config` is built by `compeffdist.training.trainer.run_training`."""
    import ray.train
    import torch

    from compeffdist.config import ModelSpec, TrainingConfig
    from compeffdist.training.backends import DeepSpeedBackend
    from compeffdist.training.loss import ChunkedLossModel
    from compeffdist.training.plan import TrainPlan, epoch_micro_batches

    training = TrainingConfig.model_validate(config["training"])
    student = ModelSpec.model_validate(config["student"])
    plan = TrainPlan(**config["plan"])
    rank = ray.train.get_context().get_world_rank()
    torch.manual_seed(config["seed"])

    model = load_student(student, training)
    trainable = ChunkedLossModel(model, training.loss_chunk_tokens)
    backend = DeepSpeedBackend(
        trainable, training, config["deepspeed"], plan.total_steps, config["dist_backend"], module=model
    )

    state = _restore(ray.train.get_checkpoint(), backend, plan)
    if state.finished:
        return
    start_step = state.resumed_from = state.step
    fail_after = _injected_failure_step(config)
    shard = _read_shard(ray.train.get_dataset_shard("train"), plan.rows // plan.workers, rank)
    accumulation = plan.gradient_accumulation_steps
    window = Window()
    for epoch in range(state.step // plan.steps_per_epoch, plan.epochs):
        if state.step >= plan.total_steps:
            break
        # Micro batches already trained before a restart are not in the list: resume skips exactly those.
        micro_batches = epoch_micro_batches(plan, rank, config["seed"], epoch, state.step)
        for offset, chunk in enumerate(micro_batches):
            if offset % accumulation == 0:
                window.lr = backend.current_lr()
            _train_micro(backend, {name: [shard[i][name] for i in chunk] for name in SEQUENCE_COLUMNS}, config, window)
            if (offset + 1) % accumulation == 0:
                state.step += 1
                if _after_step(state, epoch, plan, training, backend, window, rank, config):
                    window = Window()
                if state.step > start_step and state.step == fail_after:
                    _inject_failure(config, rank, state.step)
                if state.step >= plan.total_steps:
                    break
    _finish(state, backend, student, training, rank)


def _injected_failure_step(config: dict[str, Any]) -> int | None:
    """The step after which this worker group fails on purpose (tests), or None.

    Once per run: the first failure leaves a marker in the run's storage, so a worker group that
    Ray Train restarts (max_failures) trains on instead of failing at the same step again.
    """
    if config.get("fail_after_step") is None:
        return None
    from compeffdist.storage import Location

    return None if Location.of(config["fail_marker"]).exists() else config["fail_after_step"]


def _inject_failure(config: dict[str, Any], rank: int, step: int) -> None:
    from compeffdist.storage import Location

    if rank == 0:
        Location.of(config["fail_marker"]).write_text(json.dumps({"step": step}))
    raise RuntimeError(f"injected failure after step {step} (COMPEFFDIST_TRAIN_FAIL_AFTER_STEP)")


def _read_shard(data: Any, expected: int, rank: int) -> list[dict[str, Any]]:
    """This worker's rows (its Ray Data split), sorted by row index so their order does not depend on streaming."""
    rows: list[tuple[int, dict[str, Any]]] = []
    for batch in data.iter_batches(batch_size=None, batch_format="numpy"):
        for position, index in enumerate(batch[ROW_INDEX].tolist()):
            rows.append((int(index), {name: batch[name][position] for name in SEQUENCE_COLUMNS}))
    if len(rows) != expected:
        raise RuntimeError(f"worker {rank} received {len(rows)} rows, expected {expected}: the data split is not equal")
    return [row for _, row in sorted(rows, key=lambda item: item[0])]


def _train_micro(backend: Any, raw: dict[str, Any], config: dict[str, Any], window: Window) -> None:
    from compeffdist.training.examples import IGNORE_INDEX
    from compeffdist.training.packing import collate

    batch, tokens = collate(raw, config["pad_token_id"], config["packed"])
    window.loss_sum += backend.train_micro_batch(batch)
    window.micro_batches += 1
    window.tokens += tokens
    window.loss_tokens += int((batch["labels"] != IGNORE_INDEX).sum())


def _after_step(
    state: WorkerState, epoch: int, plan: Any, training: Any, backend: Any, window: Window, rank: int,
    config: dict[str, Any],
) -> bool:  # fmt: skip
    """Report a metrics row every `report_every_steps`, checkpoint every `checkpoint_every_steps`.

    Returns whether a row was made (the metrics window starts over then).
    """
    import ray.train

    last = state.step >= plan.total_steps
    checkpoint_now = state.step % training.checkpoint_every_steps == 0 and not last
    if not (last or checkpoint_now or state.step % training.report_every_steps == 0):
        return False
    state.metrics.append(_metrics_row(state, epoch, window, config))
    if last:
        return True  # the final row goes out with the exported model in _finish
    if not checkpoint_now:
        ray.train.report(state.metrics[-1])
        return True
    folder = _staging_folder(training, "compeffdist-ckpt-")
    try:
        backend.save(folder)
        if rank == 0:
            _write_state(folder, state)
        _report_folder(state.metrics[-1], folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return True


def _metrics_row(state: WorkerState, epoch: int, window: Window, config: dict[str, Any]) -> dict[str, Any]:
    """One stage-table row: loss averaged over all workers' micro batches, global token throughput."""
    import torch
    import torch.distributed as dist

    elapsed = time.perf_counter() - window.started
    device = "cuda" if config["dist_backend"] == "nccl" else "cpu"
    sums = torch.tensor([window.loss_sum, window.micro_batches, window.tokens, window.loss_tokens],
                        dtype=torch.float64, device=device)  # fmt: skip
    dist.all_reduce(sums)
    loss_sum, micro, tokens, loss_tokens = sums.tolist()
    previous = state.metrics[-1] if state.metrics else {"tokens": 0, "loss_tokens": 0, "train_seconds": 0.0}
    return {
        "step": state.step,
        "epoch": epoch,
        "loss": loss_sum / micro,
        "learning_rate": window.lr,
        "tokens": previous["tokens"] + int(tokens),
        "loss_tokens": previous["loss_tokens"] + int(loss_tokens),
        "tokens_per_s": tokens / elapsed if elapsed > 0 else 0.0,
        "seconds_per_step": elapsed / max(1, state.step - previous.get("step", 0)),
        "train_seconds": previous["train_seconds"] + elapsed,
    }


def _staging_folder(training: Any, prefix: str) -> Path:
    """A fresh folder on the node-local staging disk (`checkpoint_staging_dir`) for a checkpoint Ray then uploads."""
    root = training.checkpoint_staging_dir
    if root is not None:
        Path(root).mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=root))


def _write_state(folder: Path, state: WorkerState) -> None:
    saved = {"step": state.step, "finished": state.finished, "resumed_from": state.resumed_from}
    (folder / STATE_FILE).write_text(json.dumps(saved), encoding="utf-8")
    with open(folder / METRICS_FILE, "w", encoding="utf-8") as handle:
        for row in state.metrics:
            handle.write(json.dumps(row) + "\n")


def _report_folder(metrics: dict[str, Any], folder: Path) -> None:
    """Report with this rank's files (Ray merges all ranks' folders into one checkpoint)."""
    import ray.train

    checkpoint = ray.train.Checkpoint.from_directory(str(folder)) if any(folder.iterdir()) else None
    ray.train.report(metrics, checkpoint=checkpoint)


def _restore(checkpoint: Any, backend: Any, plan: Any) -> WorkerState:
    if checkpoint is None:
        return WorkerState()
    with checkpoint.as_directory() as folder:
        folder = Path(folder)
        saved = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
        metrics_path = folder / METRICS_FILE
        metrics = [json.loads(line) for line in metrics_path.read_text(encoding="utf-8").splitlines() if line]
        state = WorkerState(step=saved["step"], finished=saved["finished"], metrics=metrics)
        if state.step > plan.total_steps:
            raise RuntimeError(f"checkpoint is at step {state.step} but this run has only {plan.total_steps} steps")
        if not state.finished:
            backend.load(folder)
    print(f"[training] resumed from step {state.step} (finished={state.finished})", flush=True)
    return state


def _finish(state: WorkerState, backend: Any, student: Any, training: Any, rank: int) -> None:
    """Gather the full weights, export a Hugging Face folder on rank 0, and report the final checkpoint."""
    from transformers import AutoTokenizer

    from compeffdist.models.registry import resolve_model

    # LoRA merges the adapters into the module itself (never ZeRO-3, see TrainingConfig), so a separate
    # full CPU copy of the weights is only built for full fine-tuning.
    weights = backend.full_state_dict(rank) if training.lora is None else None
    state.finished = True
    folder = _staging_folder(training, "compeffdist-final-")
    try:
        if rank == 0:
            export = folder / MODEL_DIR
            module = backend.module
            if training.lora is not None:
                module = module.merge_and_unload()  # plain weights that transformers and vLLM load
            module.config.use_cache = True
            module.save_pretrained(export, state_dict=weights)
            tokenizer = AutoTokenizer.from_pretrained(
                resolve_model(student), trust_remote_code=student.trust_remote_code
            )
            tokenizer.save_pretrained(export)
            _write_state(folder, state)
        _report_folder(state.metrics[-1] if state.metrics else {"step": state.step}, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
