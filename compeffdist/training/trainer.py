"""Driver side of student fine-tuning: the sequence parts as a Ray Dataset, TorchTrainer, fetch the model."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compeffdist.config import ModelSpec, TrainingConfig
from compeffdist.storage import Location
from compeffdist.training.data import SequenceData, sequences_dataset
from compeffdist.training.plan import TrainPlan, make_plan

FAIL_AFTER_STEP_ENV = "COMPEFFDIST_TRAIN_FAIL_AFTER_STEP"


@dataclass
class TrainingRun:
    """What a finished run leaves behind: the exported model folder, one metrics row per report, and the step
    the last worker group started from (0, or the checkpoint a restart resumed from)."""

    model_dir: Path
    metrics: list[dict[str, Any]]
    plan: TrainPlan
    resumed_from_step: int = 0


def worker_config(
    training: TrainingConfig, student: ModelSpec, plan: TrainPlan, seed: int, pad_token_id: int, fail_marker: Location
) -> dict[str, Any]:
    """The plain-data `train_loop_config` each worker rebuilds its settings from."""
    from compeffdist.training.deepspeed_config import build_deepspeed_config, validate_deepspeed_config

    ds_config = build_deepspeed_config(training)
    validate_deepspeed_config(ds_config)
    fail_after = os.environ.get(FAIL_AFTER_STEP_ENV)
    return {
        "training": training.model_dump(mode="json"),
        "student": student.model_dump(mode="json"),
        "plan": plan.as_dict(),
        "seed": seed,
        "pad_token_id": pad_token_id,
        "packed": training.packing,
        "deepspeed": ds_config,
        "dist_backend": "nccl" if training.use_gpu else "gloo",
        "fail_after_step": int(fail_after) if fail_after else None,
        "fail_marker": fail_marker.uri,  # an injected failure fires once per run (loop._injected_failure_step)
    }


def run_training(
    data: SequenceData,
    *,
    student: ModelSpec,
    training: TrainingConfig,
    seed: int,
    pad_token_id: int,
    storage: Location,
    export_dir: Path,
    run_name: str = "training",
) -> TrainingRun:
    """Train the student on the sequence parts `data` with Ray Train; resume from `storage/run_name` if it holds
    checkpoints. A worker failure restarts the worker group from the last checkpoint up to
    `training.max_failures` times.

    `storage` must outlive a crash (the stage passes its work area) and, on a cluster, be storage
    every node sees (a shared folder or an object-store URI). The exported Hugging Face folder is
    copied to the local `export_dir`.
    """
    import ray.train
    from ray.data import ExecutionOptions
    from ray.train.torch import TorchConfig, TorchTrainer

    from compeffdist.training.loop import METRICS_FILE, MODEL_DIR, STATE_FILE, train_loop_per_worker

    if data.total == 0:
        raise ValueError("no training sequences")
    plan = make_plan(
        data.total, training.num_workers, training.micro_batch_size, training.gradient_accumulation_steps,
        training.epochs, training.max_steps,
    )  # fmt: skip
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=worker_config(
            training, student, plan, seed, pad_token_id, storage / f"{run_name}-injected-failure.json"
        ),
        scaling_config=ray.train.ScalingConfig(num_workers=training.num_workers, use_gpu=training.use_gpu),
        torch_config=TorchConfig(backend="nccl" if training.use_gpu else "gloo"),
        run_config=ray.train.RunConfig(
            name=run_name,
            **storage.ray_storage(),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
            failure_config=ray.train.FailureConfig(max_failures=training.max_failures),
        ),
        datasets={"train": sequences_dataset(data)},
        # Split equally, the same way on every run (order preserved, no locality-driven assignment): each
        # worker holds only its share, reshuffled per epoch in loop.py; a fixed split makes resume exact.
        dataset_config=ray.train.DataConfig(
            execution_options=ExecutionOptions(preserve_order=True), enable_shard_locality=False
        ),
    )
    result = trainer.fit()
    if result.error is not None:
        raise RuntimeError(f"training failed: {result.error}") from result.error
    if result.checkpoint is None:
        raise RuntimeError("training finished without a final checkpoint")
    with result.checkpoint.as_directory() as folder:
        shutil.rmtree(export_dir, ignore_errors=True)
        shutil.copytree(Path(folder) / MODEL_DIR, export_dir)
        lines = (Path(folder) / METRICS_FILE).read_text(encoding="utf-8").splitlines()
        state = json.loads((Path(folder) / STATE_FILE).read_text(encoding="utf-8"))
    metrics = [json.loads(line) for line in lines if line]
    return TrainingRun(Path(export_dir), metrics, plan, resumed_from_step=state.get("resumed_from", 0))
