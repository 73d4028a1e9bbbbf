"""Attribute-based instruction construction (S1-S11)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from compeffdist.config.base import NOT_IDENTITY, StrictModel
from compeffdist.config.models import SamplingConfig


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
