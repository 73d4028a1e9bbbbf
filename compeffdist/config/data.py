"""The user-text pool, and teacher answers imported from files."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from compeffdist.config.base import StrictModel
from compeffdist.config.models import SamplingConfig
from compeffdist.data.textio import SUFFIX_FORMATS, TextFormat, format_of


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
