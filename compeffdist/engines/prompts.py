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
