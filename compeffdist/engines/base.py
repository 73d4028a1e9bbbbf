"""The engine interface: the pipeline asks for generations and next-token scores, never for a backend."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from compeffdist.chat import render_prompt
from compeffdist.config import ModelSpec, ResourceConfig
from compeffdist.generation.requests import GenerationRequest, GenerationResult


class Engine(ABC):
    """A loaded model that generates text and scores next tokens, whatever runs it."""

    model_name: str
    tokenizer: Any  # a Hugging Face tokenizer, for token-id look-ups (verbalizers)

    @abstractmethod
    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """Generate for every request; a failing request yields a result with `error_kind`, never an exception."""

    @abstractmethod
    def next_token_logprobs(self, prompts: list[str], token_ids: list[list[int]]) -> list[list[float]]:
        """Log-probabilities of the given candidate token ids as the next token after each raw prompt."""


def use_torch_threads(resources: ResourceConfig) -> None:
    """Give torch `resources.torch_threads` intra-op threads in this process (None: torch's default)."""
    if resources.torch_threads:
        import torch

        torch.set_num_threads(resources.torch_threads)


def model_label(model: ModelSpec) -> str:
    """The name results carry for a model: its name, with the kept layers of a derived student."""
    if model.derive_layers is None:
        return model.name
    if model.derive_layer_choice == "first":
        return f"{model.name}[:{model.derive_layers}]"
    return f"{model.name}[{model.derive_layer_choice} {model.derive_layers}]"


def prompt_text(tokenizer: Any, request: GenerationRequest, chat_template_kwargs: dict[str, Any]) -> str:
    """The exact text a model sees: messages through its chat template, raw prompts unchanged."""
    if request.messages is None:
        return request.prompt or ""
    return render_prompt(tokenizer, request.messages, chat_template_kwargs)
