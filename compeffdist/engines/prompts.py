"""Turning a request into the exact text a model sees; shared by every backend so they agree."""

from __future__ import annotations

from typing import Any

from compeffdist.engines.base import GenerationRequest


def render_prompt(tokenizer: Any, request: GenerationRequest, chat_template_kwargs: dict[str, Any]) -> str:
    """Chat messages go through the model's own chat template; raw prompts pass through unchanged."""
    if request.messages is None:
        return request.prompt or ""
    return tokenizer.apply_chat_template(
        request.messages, tokenize=False, add_generation_prompt=True, **chat_template_kwargs
    )


def encode_prompt(tokenizer: Any, text: str) -> list[int]:
    """Token ids of a rendered prompt, with the tokenizer's special tokens unless the text already starts
    with BOS: chat templates (Llama 3, Gemma) write it themselves, and a second BOS shifts the model."""
    bos = tokenizer.bos_token
    return tokenizer(text, add_special_tokens=not (bos and text.startswith(bos)))["input_ids"]
