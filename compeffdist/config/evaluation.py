"""SentiBench evaluation."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from compeffdist.config.base import StrictModel

SENTIBENCH_DATASETS = [
    "sc/imdb", "sc/yelp2", "sc/sst2", "sc/twitter",
    "multifaced/irony18", "multifaced/tweeteval", "multifaced/pstance", "multifaced/intimacy",
    "absa/asqp_rest16", "absa/opener", "absa/atsa_rest16", "absa/acsa_rest16",
]  # fmt: skip


class HeldoutConfig(StrictModel):
    """Teacher-labeled records kept out of training, to measure how far the student moved toward its teacher."""

    fraction: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Share of the records held out of the selection stage's pool (never trained on) and scored "
        "by evaluation: label agreement with the teacher and the NLL of its answers. A deterministic hash of "
        "each record id decides, so the split does not depend on difficulty, selection or training. 0: none "
        "(the paper selects from every record).",
    )
    seed: int = Field(0, ge=0, description="Seed of the hash split; change it to draw another held-out set.")


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
    heldout: HeldoutConfig = Field(
        default_factory=HeldoutConfig, description="Held-out teacher-labeled records (split and seed)."
    )
    agreement_max_new_tokens: int = Field(
        48, ge=1, description="Generation budget of each model's answer to a held-out classification record."
    )
    bootstrap_resamples: int = Field(
        1000, ge=100, description="Bootstrap resamples of every confidence interval (test examples or records)."
    )
    confidence: float = Field(0.95, gt=0.0, lt=1.0, description="Confidence level of every interval.")
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
