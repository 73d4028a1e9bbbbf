"""Build and validate the embedded DeepSpeed config without starting any process group."""

from __future__ import annotations

from typing import Any

from compeffdist.config import TrainingConfig


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
        "train_batch_size": training.global_batch_size,
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
        "train_batch_size": training.global_batch_size,
        "gradient_clipping": training.gradient_clipping,
    }
    for key, value in values.items():
        if config.get(key, "auto") == "auto":
            config[key] = value
    # The trainer always hands DeepSpeed its own optimizer (see build_deepspeed_config).
    config.setdefault("zero_allow_untested_optimizer", True)
    return config


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
