"""Student fine-tuning on Ray Train + DeepSpeed."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from compeffdist.config.base import StrictModel


class LoraSettings(StrictModel):
    """Low-rank adapters (peft) for small GPUs; merged into the base weights when the model is exported."""

    r: int = Field(16, ge=1, description="Adapter rank.")
    alpha: int = Field(32, ge=1, description="LoRA scaling numerator (the update is scaled by alpha / r).")
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the adapter input.")
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        description="Module names that get adapters (the attention and MLP projections of Llama-style models).",
    )


# Fields that do not change the trained model: the lead's staleness hash leaves fields with this marker out.
NOT_IDENTITY: dict[str, Any] = {"identity": False}


class TrainingConfig(StrictModel):
    """Student SFT; defaults are the paper's effective recipe (METHOD.md §4) on DeepSpeed ZeRO-2.

    Every run uses DeepSpeed (ZeRO 0-3) on the process group Ray Train sets up; ZeRO-0 is plain
    data parallelism (what `strategy: ddp` used to be).
    """

    seed: int | None = Field(None, description="Init and data-order seed; None: run.seed. Varies training alone.")
    num_workers: int = Field(
        2, ge=1, description="Ray Train workers (one GPU each with use_gpu); sets the global batch."
    )
    use_gpu: bool = Field(False, description="Train on GPUs (NCCL) instead of CPUs (gloo).")
    epochs: int = Field(4, ge=1, description="Passes over the training sequences.")
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps.")
    learning_rate: float = Field(5e-5, gt=0, description="Peak AdamW learning rate.")
    weight_decay: float = Field(0.1, ge=0, description="AdamW decoupled weight decay.")
    betas: tuple[float, float] = Field(
        (0.9, 0.999), strict=False, description="AdamW betas (a YAML list; each item stays strict)."
    )
    eps: float = Field(1e-8, description="AdamW epsilon.")
    warmup_steps: int = Field(0, ge=0, description="Linear warmup from 0 over this many optimizer steps.")
    lr_scheduler: Literal["cosine", "linear", "constant"] = Field(
        "cosine", description="Decay after warmup (transformers.get_scheduler's schedules of these names)."
    )
    max_seq_len: int = Field(2048, ge=16, description="Tokens per training row; longer conversations are cut.")
    micro_batch_size: int = Field(8, ge=1, description="Rows per worker per forward/backward pass.")
    gradient_accumulation_steps: int = Field(8, ge=1, description="Micro batches per optimizer step.")
    gradient_clipping: float = Field(1.0, ge=0, description="Max global gradient norm (0: no clipping).")
    packing: bool = Field(True, description="Pack documents into max_seq_len rows with per-document attention.")
    bf16: bool | None = Field(None, description="None: bf16 on GPU, fp32 on CPU (bf16 is emulated on AVX2).")
    gradient_checkpointing: bool = Field(True, description="Activation checkpointing, as in the paper's recipe.")
    zero_stage: int = Field(
        2, ge=0, le=3, description="DeepSpeed ZeRO stage: 0 plain data parallel, 1-2 partition optimizer/gradients, "
        "3 also parameters.",
    )  # fmt: skip
    offload_optimizer: bool = Field(
        False, description="ZeRO-Offload: optimizer states and step on the CPU (DeepSpeedCPUAdam); zero_stage >= 1."
    )
    loss_chunk_tokens: int | None = Field(
        1024,
        ge=1,
        description="Labelled positions per lm_head + cross-entropy chunk (training/loss.py): no full-vocabulary fp32 "
        "logits for the whole micro batch. null: the model's own loss. The same loss to float rounding.",
        json_schema_extra=NOT_IDENTITY,
    )
    report_every_steps: int = Field(
        10, ge=1, description="Optimizer steps between metrics rows (each report costs ~1.5 s).",
        json_schema_extra=NOT_IDENTITY,
    )  # fmt: skip
    checkpoint_every_steps: int = Field(
        100, ge=1, description="Optimizer steps between checkpoints (what a restart resumes from).",
        json_schema_extra=NOT_IDENTITY,
    )  # fmt: skip
    max_failures: int = Field(
        2,
        ge=-1,
        description="Worker-group restarts from the last checkpoint within one run (-1: unlimited, 0: fail at once).",
        json_schema_extra=NOT_IDENTITY,
    )
    checkpoint_staging_dir: str | None = Field(
        None,
        description="Node-local folder where workers write a checkpoint before Ray Train uploads it to the run's "
        "storage (a fast local disk with room for a full ZeRO checkpoint); None: the system temp folder.",
        json_schema_extra=NOT_IDENTITY,
    )
    lora: LoraSettings | None = Field(None, description="None: full fine-tuning (the paper).")
    deepspeed: dict[str, Any] | None = Field(
        None, description="Full DeepSpeed config; None builds one from the fields above."
    )

    @property
    def use_bf16(self) -> bool:
        return self.use_gpu if self.bf16 is None else self.bf16

    @model_validator(mode="before")
    @classmethod
    def _strategy_removed(cls, data: Any) -> Any:
        if isinstance(data, dict) and "strategy" in data:
            raise ValueError(
                f"strategy: {data['strategy']} is no longer a setting: every run uses DeepSpeed, and plain data "
                "parallelism (the former strategy: ddp) is zero_stage: 0; remove the strategy line"
            )
        return data

    @model_validator(mode="after")
    def _deepspeed_consistent(self) -> TrainingConfig:
        if self.lora is not None and self.zero_stage == 3:
            raise ValueError("lora with zero_stage 3 is not supported: use zero_stage 0-2")
        if self.deepspeed is None:
            return self
        _check_embedded_deepspeed(self)
        return self

    @property
    def global_batch_size(self) -> int:
        """Sequences per optimizer step over all workers (DeepSpeed's train_batch_size)."""
        return self.micro_batch_size * self.gradient_accumulation_steps * self.num_workers


def _check_embedded_deepspeed(training: TrainingConfig) -> None:
    """Raise ValueError naming the DeepSpeed key when it contradicts the training section."""
    ds = training.deepspeed or {}
    for key in ("optimizer", "scheduler"):
        if key in ds:
            raise ValueError(
                f"deepspeed.{key} is not supported: the trainer builds AdamW and the schedule from the training "
                "section (learning_rate, betas, eps, weight_decay, lr_scheduler, warmup_steps)"
            )
    expected = {
        "train_micro_batch_size_per_gpu": training.micro_batch_size,
        "gradient_accumulation_steps": training.gradient_accumulation_steps,
    }
    for key, value in expected.items():
        if key in ds and ds[key] != "auto" and ds[key] != value:
            raise ValueError(f"deepspeed.{key} is {ds[key]} but the training section says {value}")
    if "train_batch_size" in ds and ds["train_batch_size"] != "auto":
        want = training.global_batch_size
        if ds["train_batch_size"] != want:
            raise ValueError(
                f"deepspeed.train_batch_size is {ds['train_batch_size']} but micro_batch_size × "
                f"gradient_accumulation_steps × num_workers = {want}"
            )
    zero = ds.get("zero_optimization")
    if zero is not None:
        from pydantic import ValidationError

        try:
            from deepspeed.runtime.zero.config import DeepSpeedZeroConfig
        except ImportError:  # deepspeed absent: structural checks above still ran
            return
        try:
            DeepSpeedZeroConfig(**zero)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ValueError(f"deepspeed.zero_optimization is invalid: {problems}") from exc
    if ds.get("bf16", {}).get("enabled") and not training.use_gpu:
        raise ValueError("deepspeed.bf16.enabled needs use_gpu: true (bf16 is emulated and very slow on CPU)")
