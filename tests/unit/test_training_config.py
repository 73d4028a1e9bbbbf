"""The embedded DeepSpeed config: built from the training section, validated without a process group."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from compeffdist.config import TrainingConfig
from compeffdist.training.deepspeed_config import (
    build_deepspeed_config,
    offloads_optimizer,
    validate_deepspeed_config,
)

pytestmark = pytest.mark.unit


def test_defaults_are_the_paper_recipe_on_zero2():
    training = TrainingConfig()
    ds = build_deepspeed_config(training)
    assert training.packing and training.gradient_checkpointing and training.lora is None
    assert (training.learning_rate, training.weight_decay, tuple(training.betas), training.warmup_steps) == (
        5e-5, 0.1, (0.9, 0.999), 0)  # fmt: skip
    assert ds["zero_optimization"] == {"stage": 2} and ds["gradient_clipping"] == 1.0
    assert ds["train_batch_size"] == 8 * 8 * 2 and ds["zero_allow_untested_optimizer"]
    validate_deepspeed_config(ds)


def test_bf16_follows_the_device_unless_set():
    assert build_deepspeed_config(TrainingConfig(use_gpu=True))["bf16"] == {"enabled": True}
    assert build_deepspeed_config(TrainingConfig(use_gpu=False))["bf16"] == {"enabled": False}
    assert build_deepspeed_config(TrainingConfig(use_gpu=True, bf16=False))["bf16"] == {"enabled": False}


@pytest.mark.parametrize("stage", [0, 1, 2, 3])
def test_every_zero_stage_with_offload_validates(stage):
    validate_deepspeed_config(build_deepspeed_config(TrainingConfig(zero_stage=stage, offload_optimizer=True)))


def test_user_config_auto_values_are_filled():
    user = {"train_micro_batch_size_per_gpu": "auto", "train_batch_size": "auto", "zero_optimization": {"stage": 3}}
    training = TrainingConfig(micro_batch_size=2, gradient_accumulation_steps=3, num_workers=2, deepspeed=user)
    ds = build_deepspeed_config(training)
    assert (ds["train_micro_batch_size_per_gpu"], ds["gradient_accumulation_steps"], ds["train_batch_size"]) == (
        2,
        3,
        12,
    )
    validate_deepspeed_config(ds)


def test_bad_values_name_the_key():
    with pytest.raises(ValidationError, match="zero_optimization"):
        TrainingConfig(deepspeed={"zero_optimization": {"stage": 7}})
    with pytest.raises(ValidationError, match=r"deepspeed\.optimizer"):
        TrainingConfig(deepspeed={"optimizer": {"type": "Adam"}})
    with pytest.raises(ValueError, match="invalid DeepSpeed config"):
        validate_deepspeed_config({"train_micro_batch_size_per_gpu": 1, "zero_optimization": {"stage": 2, "bogus": 1}})


def test_lora_with_zero3_is_refused():
    with pytest.raises(ValidationError, match="lora with zero_stage 3"):
        TrainingConfig(zero_stage=3, lora={"r": 4})
    assert TrainingConfig(zero_stage=0, lora={"r": 4}).lora.r == 4


@pytest.mark.parametrize("strategy", ["ddp", "deepspeed"])
def test_the_removed_strategy_setting_says_what_replaces_it(strategy):
    with pytest.raises(ValidationError, match=f"strategy: {strategy} is no longer a setting.*zero_stage: 0"):
        TrainingConfig(strategy=strategy)


def test_zero0_is_plain_data_parallelism_through_deepspeed():
    ds = build_deepspeed_config(TrainingConfig(zero_stage=0, offload_optimizer=True))
    assert ds["zero_optimization"] == {"stage": 0} and not offloads_optimizer(ds)  # offload needs a ZeRO stage
    validate_deepspeed_config(ds)


def test_run_cadence_and_recovery_fields_are_not_part_of_the_models_identity():
    """The staleness hash leaves these out: changing them never retrains a finished student."""
    marked = {
        name for name, f in TrainingConfig.model_fields.items() if (f.json_schema_extra or {}).get("identity") is False
    }
    assert marked == {"report_every_steps", "checkpoint_every_steps", "max_failures", "checkpoint_staging_dir",
                      "loss_chunk_tokens"}  # fmt: skip
    assert all(f.description for f in TrainingConfig.model_fields.values())


def test_offload_is_detected_in_built_and_user_configs():
    assert not offloads_optimizer(build_deepspeed_config(TrainingConfig(zero_stage=2)))
    assert offloads_optimizer(build_deepspeed_config(TrainingConfig(zero_stage=2, offload_optimizer=True)))
    assert not offloads_optimizer(build_deepspeed_config(TrainingConfig(zero_stage=0, offload_optimizer=True)))
    user = {"zero_optimization": {"stage": 3, "offload_optimizer": {"device": "cpu"}}}
    assert offloads_optimizer(build_deepspeed_config(TrainingConfig(deepspeed=user)))
    assert not offloads_optimizer({"zero_optimization": {"stage": 2, "offload_optimizer": {"device": "none"}}})


def test_one_global_batch_formula_everywhere():
    training = TrainingConfig(micro_batch_size=3, gradient_accumulation_steps=5, num_workers=2)
    assert training.global_batch_size == 30 == build_deepspeed_config(training)["train_batch_size"]
    with pytest.raises(ValidationError, match="= 30"):
        TrainingConfig(micro_batch_size=3, gradient_accumulation_steps=5, num_workers=2,
                       deepspeed={"train_batch_size": 12})  # fmt: skip


GPU_CLASSES = {"gpu-80gb.yaml": 80e9, "gpu-40gb.yaml": 40e9}


@pytest.mark.parametrize("name", sorted(GPU_CLASSES))
def test_gpu_class_training_configs_keep_the_recipe_and_fit_their_gpus(name, data_root, monkeypatch):
    """Each GPU class trains the paper's recipe (same global batch) with a 4.3B student (Gemma-3-4B, 262k vocab) on
    2 GPUs within 90% of its memory: DeepSpeed's own ZeRO-2 model-state estimate, the checkpointed activations and
    one fp32 loss chunk (logits, their gradient, softmax)."""
    from pathlib import Path

    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

    from compeffdist.config import load_config

    monkeypatch.setenv("COMPEFFDIST_DATA_ROOT", str(data_root))
    configs = Path(__file__).resolve().parents[2] / "configs"
    job = load_config(configs / "gemma3-27b-to-4b.yaml", overlays=[configs / "training" / name])  # as --overlay
    paper = load_config(configs / "gemma3-27b-to-4b.yaml").training
    t = job.training
    assert t.global_batch_size == paper.global_batch_size == 128 and t.zero_stage == 2
    assert (t.learning_rate, t.epochs, t.max_seq_len, t.lr_scheduler) == (5e-5, 4, 2048, "cosine")
    assert t.max_failures >= 2 and t.gradient_checkpointing and t.bf16
    params, vocab, hidden, layers = 4.3e9, 262_144, 2560, 34
    _, states = estimate_zero2_model_states_mem_needs(params, num_gpus_per_node=t.num_workers,
                                                      cpu_offload=t.offload_optimizer)  # fmt: skip
    activations = t.micro_batch_size * t.max_seq_len * hidden * 2 * layers  # one bf16 layer input kept per layer
    loss_chunk = t.loss_chunk_tokens * vocab * (2 + 4 + 4 + 4)  # bf16 logits, fp32 copy, softmax, gradient
    assert states + activations + loss_chunk < 0.9 * GPU_CLASSES[name], (states, activations, loss_chunk)
    if name == "gpu-80gb.yaml":  # the paper-family configs carry the 80 GB section as it is
        assert paper == t
