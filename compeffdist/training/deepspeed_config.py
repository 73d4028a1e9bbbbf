"""Build and validate the embedded DeepSpeed config without starting any process group."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from compeffdist.config import TrainingConfig


def global_batch_size(training: TrainingConfig) -> int:
    """Sequences per optimizer step over all workers (DeepSpeed's train_batch_size)."""
    return training.micro_batch_size * training.gradient_accumulation_steps * training.num_workers


def offloads_optimizer(ds_config: dict[str, Any]) -> bool:
    """Whether ZeRO keeps the optimizer on CPU/NVMe; DeepSpeed then refuses a torch optimizer (DeepSpeedCPUAdam)."""
    offload = (ds_config.get("zero_optimization") or {}).get("offload_optimizer") or {}
    return str(offload.get("device", "none")).lower() in ("cpu", "nvme")


def build_deepspeed_config(training: TrainingConfig) -> dict[str, Any]:
    """The DeepSpeed config a run uses: the user's own if given, else one built from the fields."""
    if training.deepspeed is not None:
        return _resolve_auto(dict(training.deepspeed), training)
    zero: dict[str, Any] = {"stage": training.zero_stage}
    if training.offload_optimizer and training.zero_stage > 0:
        zero["offload_optimizer"] = {"device": "cpu"}
    return {
        "train_micro_batch_size_per_gpu": training.micro_batch_size,
        "gradient_accumulation_steps": training.gradient_accumulation_steps,
        "train_batch_size": global_batch_size(training),
        "gradient_clipping": training.gradient_clipping,
        "zero_optimization": zero,
        "bf16": {"enabled": training.use_bf16},
        # The trainer builds the optimizer (backends.build_optimizer): a torch AdamW, as the paper's recipe,
        # which ZeRO accepts with this flag; DeepSpeed's fused Adam would JIT-compile for over a minute.
        # With offload_optimizer it is DeepSpeedCPUAdam in AdamW mode (JIT-compiles cpu_adam once).
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 10**9,
    }


def _resolve_auto(config: dict[str, Any], training: TrainingConfig) -> dict[str, Any]:
    """Fill the Hugging Face style "auto" batch values (DeepSpeed itself does not know "auto")."""
    values = {
        "train_micro_batch_size_per_gpu": training.micro_batch_size,
        "gradient_accumulation_steps": training.gradient_accumulation_steps,
        "train_batch_size": global_batch_size(training),
        "gradient_clipping": training.gradient_clipping,
    }
    for key, value in values.items():
        if config.get(key, "auto") == "auto":
            config[key] = value
    # The trainer always hands DeepSpeed its own optimizer (see build_deepspeed_config).
    config.setdefault("zero_allow_untested_optimizer", True)
    return config


def check_deepspeed_config(training: TrainingConfig) -> None:
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
        want = global_batch_size(training)
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


def validate_deepspeed_config(config: dict[str, Any]) -> None:
    """Parse `config` with DeepSpeed's own parser (no process group) and raise ValueError on a bad key or value.

    The batch-size triple is checked by `check_deepspeed_config`; it is left out here because
    DeepSpeed assumes a world size of 1 when no process group exists.
    """
    from deepspeed.runtime.config import DeepSpeedConfig

    single_process = {k: v for k, v in config.items() if k != "train_batch_size"}
    try:
        DeepSpeedConfig(single_process)
    except Exception as exc:  # DeepSpeed raises AssertionError, ValueError or pydantic errors
        raise ValueError(f"invalid DeepSpeed config: {exc}") from exc
