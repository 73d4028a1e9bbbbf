"""Chat formatting in one place: the text a model sees for engines, difficulty scoring, training and evaluation.

Conversations travel between stages as a structured Arrow column (`MESSAGES_TYPE`: a list of
role/content structs), parsed once when a record is made and never re-parsed from a string.
Every stage renders them with the functions below, so the teacher's prompt, the scored span and
the student's loss mask are the same text.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

ROLES = ("system", "user", "assistant")
MESSAGE_TYPE = pa.struct([("role", pa.string()), ("content", pa.string())])
MESSAGES_TYPE = pa.list_(MESSAGE_TYPE)

Messages = list[dict[str, str]]


def user_turn(content: str) -> Messages:
    """A one-turn conversation: the user's instruction."""
    return [{"role": "user", "content": content}]


def check_messages(value: Any) -> Messages:
    """A conversation that a response can answer; ValueError says what is wrong with it.

    Accepts what an Arrow `MESSAGES_TYPE` cell becomes in Python (a list of dicts).
    """
    if not isinstance(value, list | tuple) or not value:
        raise ValueError("messages must be a non-empty list")
    messages = []
    for message in value:
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise ValueError("every message needs a string 'content'")
        if message.get("role") not in ROLES:
            raise ValueError(f"unknown role {message.get('role')!r}")
        messages.append({"role": message["role"], "content": message["content"]})
    if messages[-1]["role"] != "user":
        raise ValueError("the last message must be the user turn the response answers")
    return messages


def messages_array(conversations: list[Messages]) -> pa.Array:
    """The Arrow column of several conversations."""
    return pa.array(conversations, MESSAGES_TYPE)


class ChatRenderError(ValueError):
    """The chat template cannot show where the assistant turn starts; the message is the reject reason."""

    def __init__(self, reason: str, rendered: str) -> None:
        super().__init__(reason)
        self.rendered = rendered


def render_prompt(tokenizer: Any, messages: Messages, chat_template_kwargs: dict[str, Any] | None = None) -> str:
    """The conversation through the model's own chat template, ending with the generation prompt."""
    return tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True, **(chat_template_kwargs or {})
    )


def render_conversation(
    tokenizer: Any,
    messages: Messages,
    response: str,
    chat_template_kwargs: dict[str, Any] | None = None,
) -> tuple[str, str]:
    """(prompt, full): the conversation with the generation prompt, and with `response` as the assistant turn.

    Training (loss mask) and difficulty scoring (scored span) both use it. Raises ChatRenderError
    unless `prompt` is a prefix of `full`: everything after the prompt is then the assistant turn.
    """
    prompt = render_prompt(tokenizer, messages, chat_template_kwargs)
    full = tokenizer.apply_chat_template(
        [*messages, {"role": "assistant", "content": response}], tokenize=False, **(chat_template_kwargs or {})
    )
    if not full.startswith(prompt):
        # e.g. templates that rewrite earlier turns once an assistant turn follows
        raise ChatRenderError("chat template renders the prompt differently once a response follows", full)
    return prompt, full


def encode_prompt(tokenizer: Any, text: str) -> list[int]:
    """Token ids of a rendered prompt, with the tokenizer's special tokens unless the text already starts
    with BOS: chat templates (Llama 3, Gemma) write it themselves, and a second BOS shifts the model."""
    bos = tokenizer.bos_token
    return tokenizer(text, add_special_tokens=not (bos and text.startswith(bos)))["input_ids"]
