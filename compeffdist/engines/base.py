"""The engine interface: the pipeline asks for generations and next-token scores, never for a backend."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from compeffdist.chat import render_prompt
from compeffdist.config import SamplingConfig


@dataclass
class GenerationRequest:
    """One generation: chat `messages` (the engine applies the model's chat template) or a raw `prompt`."""

    request_id: str
    messages: list[dict[str, str]] | None = None
    prompt: str | None = None
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    json_schema: dict[str, Any] | None = None
    stop: list[str] | None = None

    def __post_init__(self) -> None:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError(f"request {self.request_id}: give exactly one of messages or prompt")

    def to_row(self) -> dict[str, Any]:
        """Flatten into Arrow-friendly columns: messages stay structured (chat.MESSAGES_TYPE), the schema is JSON."""
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
    def from_row(cls, row: dict[str, Any], seed: int | None = None) -> GenerationRequest:
        """Rebuild a request from its row; the row's own seed wins, `seed` is the fallback for rows without one."""
        row_seed = row.get("seed")
        return cls(
            request_id=str(row["request_id"]),
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


@dataclass
class GenerationResult:
    request_id: str
    text: str
    prompt_tokens: int
    output_tokens: int
    finish_reason: str  # "stop" | "length" | "error"
    error: str | None = None

    def to_row(self, model: str) -> dict[str, Any]:
        return {
            "response": self.text,
            "prompt_tokens": self.prompt_tokens,
            "output_tokens": self.output_tokens,
            "finish_reason": self.finish_reason,
            "error": self.error,
            "model": model,
        }


class Engine(ABC):
    """A loaded model that generates text and scores next tokens, whatever runs it."""

    model_name: str
    tokenizer: Any  # a Hugging Face tokenizer, for token-id look-ups (verbalizers)

    @abstractmethod
    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """Generate for every request; a failing request yields a result with `error`, never an exception."""

    @abstractmethod
    def next_token_logprobs(self, prompts: list[str], token_ids: list[list[int]]) -> list[list[float]]:
        """Log-probabilities of the given candidate token ids as the next token after each raw prompt."""


def prompt_text(tokenizer: Any, request: GenerationRequest, chat_template_kwargs: dict[str, Any]) -> str:
    """The exact text a model sees: messages through its chat template, raw prompts unchanged."""
    if request.messages is None:
        return request.prompt or ""
    return render_prompt(tokenizer, request.messages, chat_template_kwargs)
