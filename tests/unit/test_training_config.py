"""The embedded DeepSpeed config: built from the training section, validated without a process group."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from compeffdist.config import TrainingConfig
from compeffdist.training.deepspeed_config import (
    build_deepspeed_config,
    global_batch_size,
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
    assert TrainingConfig(strategy="ddp", zero_stage=3, lora={"r": 4}).lora.r == 4


def test_offload_is_detected_in_built_and_user_configs():
    assert not offloads_optimizer(build_deepspeed_config(TrainingConfig(zero_stage=2)))
    assert offloads_optimizer(build_deepspeed_config(TrainingConfig(zero_stage=2, offload_optimizer=True)))
    assert not offloads_optimizer(build_deepspeed_config(TrainingConfig(zero_stage=0, offload_optimizer=True)))
    user = {"zero_optimization": {"stage": 3, "offload_optimizer": {"device": "cpu"}}}
    assert offloads_optimizer(build_deepspeed_config(TrainingConfig(deepspeed=user)))
    assert not offloads_optimizer({"zero_optimization": {"stage": 2, "offload_optimizer": {"device": "none"}}})


def test_one_global_batch_formula_everywhere():
    training = TrainingConfig(micro_batch_size=3, gradient_accumulation_steps=5, num_workers=2)
    assert global_batch_size(training) == 30 == build_deepspeed_config(training)["train_batch_size"]
    with pytest.raises(ValidationError, match="= 30"):
        TrainingConfig(micro_batch_size=3, gradient_accumulation_steps=5, num_workers=2,
                       deepspeed={"train_batch_size": 12})  # fmt: skip
