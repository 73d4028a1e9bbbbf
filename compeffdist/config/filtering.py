"""Difficulty scoring and difficulty-prioritized selection."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from compeffdist.config.base import NOT_IDENTITY, StrictModel
from compeffdist.config.models import ModelSpec


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
