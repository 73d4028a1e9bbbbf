"""What is asked of a model and what comes back: requests, results, typed errors, and their Arrow rows."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import pyarrow as pa

from compeffdist.chat import MESSAGES_TYPE, Messages
from compeffdist.config import SamplingConfig


class ErrorKind(StrEnum):
    """Why a generation failed; the kind, never the message text, decides whether it is retried."""

    PROMPT_TOO_LONG = "prompt_too_long"  # the prompt does not fit max_model_len: it never will
    ENGINE = "engine"  # the engine raised (OOM, a dead worker...): may pass on another try
    EMPTY_OUTPUT = "empty_output"  # nothing but whitespace came back: sampling may do better

    @property
    def retryable(self) -> bool:
        return self is not ErrorKind.PROMPT_TOO_LONG


@dataclass
class GenerationRequest:
    """One generation: chat `messages` (the engine applies the model's chat template) or a raw `prompt`."""

    request_id: str
    messages: Messages | None = None
    prompt: str | None = None
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    json_schema: dict[str, Any] | None = None
    stop: list[str] | None = None

    def __post_init__(self) -> None:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError(f"request {self.request_id}: give exactly one of messages or prompt")

    def to_row(self) -> dict[str, Any]:
        """Arrow-friendly columns (REQUEST_SCHEMA): messages stay structured, the JSON schema is a string."""
        return {
            "request_id": self.request_id,
            "messages": self.messages,
            "prompt": self.prompt,
            "max_tokens": self.sampling.max_tokens,
            "temperature": self.sampling.temperature,
            "top_p": self.sampling.top_p,
            "seed": self.sampling.seed,
            "json_schema": json.dumps(self.json_schema) if self.json_schema else None,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any], seed: int | None = None, id_column: str = "request_id") -> GenerationRequest:
        """Rebuild a request from its row (its id in `id_column`); the row's own seed wins, `seed` is the fallback
        for rows without one."""
        row_seed = row.get("seed")
        return cls(
            request_id=str(row[id_column]),
            messages=list(row["messages"]) if row.get("messages") else None,
            prompt=row.get("prompt") if not row.get("messages") else None,
            sampling=SamplingConfig(
                max_tokens=int(row["max_tokens"]),
                temperature=float(row["temperature"]),
                top_p=float(row["top_p"]),
                seed=int(row_seed) if row_seed is not None else seed,
            ),
            json_schema=json.loads(row["json_schema"]) if row.get("json_schema") else None,
        )


REQUEST_SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("messages", MESSAGES_TYPE),
        ("prompt", pa.string()),
        ("max_tokens", pa.int64()),
        ("temperature", pa.float64()),
        ("top_p", pa.float64()),
        ("seed", pa.int64()),  # per request (SamplingConfig.seed); null: the worker's run seed
        ("json_schema", pa.string()),
    ]
)


@dataclass
class GenerationResult:
    """A model's answer to one request; a failure carries its kind and message instead of raising."""

    request_id: str
    text: str
    prompt_tokens: int
    output_tokens: int
    finish_reason: str  # "stop" | "length" | "error"
    error: str | None = None
    error_kind: ErrorKind | None = None

    @classmethod
    def failure(cls, request_id: str, kind: ErrorKind, message: str, prompt_tokens: int = 0) -> GenerationResult:
        return cls(request_id, "", prompt_tokens, 0, "error", message, kind)

    @property
    def retryable(self) -> bool:
        return self.error_kind is not None and self.error_kind.retryable

    def checked(self) -> GenerationResult:
        """The result, or an EMPTY_OUTPUT failure when a successful answer is only whitespace."""
        if self.error_kind is None and not self.text.strip():
            return GenerationResult.failure(self.request_id, ErrorKind.EMPTY_OUTPUT, "empty output", self.prompt_tokens)
        return self

    def to_row(self, model: str) -> dict[str, Any]:
        return {
            "response": self.text,
            "prompt_tokens": self.prompt_tokens,
            "output_tokens": self.output_tokens,
            "finish_reason": self.finish_reason,
            "error": self.error,
            "error_kind": self.error_kind.value if self.error_kind else None,
            "model": model,
        }


RESULT_SCHEMA = pa.schema(
    [
        ("response", pa.string()),
        ("prompt_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("finish_reason", pa.string()),
        ("error", pa.string()),
        ("error_kind", pa.string()),
        ("model", pa.string()),
        ("attempts", pa.int64()),
    ]
)


def prompt_too_long(request_id: str, tokens: int, max_model_len: int, max_tokens: int) -> GenerationResult:
    """The failure every backend reports for a prompt that leaves no room for `max_tokens`."""
    return GenerationResult.failure(
        request_id,
        ErrorKind.PROMPT_TOO_LONG,
        f"prompt has {tokens} tokens; limit is {max_model_len - max_tokens} (max_model_len - max_tokens)",
        tokens,
    )
