"""The root of a job config, and the rules across its sections (the GPU fit check)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from compeffdist.config.base import StrictModel, identity
from compeffdist.config.data import LabelingConfig, PoolConfig
from compeffdist.config.evaluation import EvaluationConfig
from compeffdist.config.filtering import DifficultyConfig, SelectionConfig
from compeffdist.config.instructions import InstructionsConfig
from compeffdist.config.models import EngineConfig, EnginesConfig, ModelsConfig, ModelSpec
from compeffdist.config.run import AccountingConfig, RayConfig, RunConfig
from compeffdist.config.training import TrainingConfig


class JobConfig(StrictModel):
    """The root of a job config file."""

    run: RunConfig = Field(default_factory=RunConfig, description="Output, data, seed.")
    ray: RayConfig = Field(default_factory=RayConfig, description="Starting or joining Ray.")
    models: ModelsConfig = Field(description="Teacher, student and embedding model.")
    engines: EnginesConfig = Field(default_factory=EnginesConfig, description="How each role's model is served.")
    pool: PoolConfig = Field(default_factory=PoolConfig, description="The user texts (S0).")
    instructions: InstructionsConfig = Field(
        default_factory=InstructionsConfig, description="Attribute-based instruction construction (S1-S11)."
    )
    labeling: LabelingConfig = Field(default_factory=LabelingConfig, description="Records and the teacher's answers.")
    difficulty: DifficultyConfig = Field(default_factory=DifficultyConfig, description="Difficulty scoring.")
    selection: SelectionConfig = Field(default_factory=SelectionConfig, description="Which records are trained on.")
    training: TrainingConfig = Field(default_factory=TrainingConfig, description="Student fine-tuning.")
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig, description="SentiBench evaluation.")
    accounting: AccountingConfig = Field(
        default_factory=AccountingConfig, description="GPU-hour projection and the GPU type for the fit check."
    )

    @model_validator(mode="after")
    def _models_fit_their_gpus(self) -> JobConfig:
        problems = [problem for problem in (_misfit(self, *use) for use in _model_uses(self)) if problem]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def seed_of(self, section: str) -> int:
        """The seed a section runs with: its own `seed` if set (selection, training), else `run.seed`."""
        own = getattr(self.section(section), "seed", None)
        return self.run.seed if own is None else own

    def section(self, dotted: str) -> Any:
        """Return the sub-config at a dotted path such as 'engines.teacher'."""
        node: Any = self
        for part in dotted.split("."):
            node = getattr(node, part)
        return node

    def section_hash(self, dotted_paths: tuple[str, ...]) -> str:
        """A stable hash of the named sections' identity: what decides whether a stage is stale.

        Fields marked NOT_IDENTITY (every `resources` section among them) are left out.
        """
        payload = {p: identity(self.section(p)) for p in sorted(dotted_paths)}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _model_uses(config: JobConfig) -> list[tuple[str, ModelSpec]]:
    """(engine section, model) pairs a run loads: each evaluated model on the engine sized for it."""
    uses = [("engines.evaluation", config.models.student)]
    scorer = config.difficulty.proxy if config.difficulty.scorer == "proxy" else config.models.student
    uses.append(("engines.scorer", scorer))  # type: ignore[arg-type]
    if config.labeling.imported is None or "teacher" in config.evaluation.models:
        uses.append(("engines.teacher", config.models.teacher))
    return uses


def _misfit(config: JobConfig, section: str, model: ModelSpec) -> str | None:
    """Why `model` does not fit the GPUs `section` gives it, or None (it fits, runs on CPU, or its size is unknown)."""
    from compeffdist.fit import estimate_fit, gpu_memory_gb, parameters_from_folder, parameters_from_name

    engine: EngineConfig = config.section(section)
    resources = engine.resources
    gpus = resources.gpus_per_replica if engine.backend == "vllm" else resources.num_gpus_per_actor
    if not gpus or resources.num_gpus_per_actor == 0:
        return None
    accounting = config.accounting
    memory = accounting.gpu_memory_gb or gpu_memory_gb(accounting.gpu_type)
    if memory is None:
        return f"accounting.gpu_type {accounting.gpu_type!r} does not name its memory: set accounting.gpu_memory_gb"
    parameters, source = None, ""
    if Path(model.name).is_dir():
        parameters, source = parameters_from_folder(Path(model.name), model.derive_layers), "its config.json"
    if parameters is None and model.parameters_b is not None:
        parameters, source = model.parameters_b, "parameters_b"
    if parameters is None and model.derive_layers is None:
        parameters, source = parameters_from_name(model.name), "its name"
    if parameters is None:
        return None
    dtype = "bfloat16" if model.dtype == "auto" else model.dtype
    utilization = (
        float(resources.vllm_engine_kwargs.get("gpu_memory_utilization", 0.9)) if engine.backend == "vllm" else 1.0
    )
    fit = estimate_fit(parameters, dtype, gpus, memory, utilization, source)
    if fit.fits:
        return None
    return (
        f"{section}: {model.name} needs about {fit.weights_gb:g} GB for its weights ({parameters:g}B parameters "
        f"from {source}, {dtype}) but {section} gives it {gpus:g} x {memory:g} GB ({accounting.gpu_type}) x "
        f"{utilization:g} = {fit.budget_gb:g} GB: raise {section}.resources.tensor_parallel_size and "
        "num_gpus_per_actor, or use GPUs with more memory"
    )
