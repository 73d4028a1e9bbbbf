"""The job config: one strict pydantic root model per run, loaded from YAML.

Every knob of a run lives here, one module per part of the pipeline. Unknown keys are errors,
values are never coerced, relative paths resolve against the config file's folder, and cross-field
rules (batch sizes vs the DeepSpeed config, models vs the GPUs they get) are checked before any work
starts. What a stage's output depends on (its identity) is kept apart from the resources that serve
it (`engines.<role>.resources`, and fields marked NOT_IDENTITY), which never make a stage stale.
"""

from compeffdist.config.base import NOT_IDENTITY, StrictModel, identity
from compeffdist.config.data import AnswerFile, ImportConfig, LabelingConfig, PoolConfig, TextFileSource
from compeffdist.config.evaluation import SENTIBENCH_DATASETS, EvaluationConfig, HeldoutConfig
from compeffdist.config.filtering import DifficultyConfig, SelectionConfig
from compeffdist.config.instructions import ClusteringConfig, InstructionsConfig
from compeffdist.config.job import JobConfig
from compeffdist.config.loading import ConfigError, format_validation_error, load_config
from compeffdist.config.models import (
    EngineConfig,
    EnginesConfig,
    ModelsConfig,
    ModelSpec,
    ResourceConfig,
    SamplingConfig,
)
from compeffdist.config.run import DATA_ROOT_ENV, AccountingConfig, LeaseConfig, RayConfig, RunConfig
from compeffdist.config.training import LoraSettings, TrainingConfig

__all__ = [
    "DATA_ROOT_ENV",
    "NOT_IDENTITY",
    "SENTIBENCH_DATASETS",
    "AccountingConfig",
    "AnswerFile",
    "ClusteringConfig",
    "ConfigError",
    "DifficultyConfig",
    "EngineConfig",
    "EnginesConfig",
    "EvaluationConfig",
    "HeldoutConfig",
    "ImportConfig",
    "InstructionsConfig",
    "JobConfig",
    "LabelingConfig",
    "LeaseConfig",
    "LoraSettings",
    "ModelSpec",
    "ModelsConfig",
    "PoolConfig",
    "RayConfig",
    "ResourceConfig",
    "RunConfig",
    "SamplingConfig",
    "SelectionConfig",
    "StrictModel",
    "TextFileSource",
    "TrainingConfig",
    "format_validation_error",
    "identity",
    "load_config",
]
