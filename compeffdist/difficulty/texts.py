"""What the scoring model reads: token ids of (instruction, response) and where the response lies.

Two layouts (METHOD.md §3.1, B5), `difficulty.chat_template`:
- raw (default, the official script's): `x + y` with x = instruction.strip(), "Input: " -> "Input:"
  and "Output: " -> "Output:"; the response starts after len(tokenize(x)) tokens, exactly as the
  official script counts it (boundary quirks included);
- chat (ablation): the conversation rendered with the scorer's own chat template, as the student is
  trained; response tokens are located by character offsets, so template tokens around the
  response (assistant header, end-of-turn) are never scored.

A text longer than max_length is cut to max_length and flagged `truncated` (whether the prompt
alone fills it or the response is cut); `difficulty.truncated` decides how the scorer treats it
(scorer.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from compeffdist.chat import ChatRenderError, render_conversation

# The unconditional pass of IFD scores the response after an empty user turn (chat) or alone (raw).
EMPTY_USER_TURN = ({"role": "user", "content": ""},)


@dataclass(frozen=True)
class ScoringText:
    """Token ids (already cut to max_length) and the response's token span in them."""

    record_id: str
    input_ids: list[int]
    response_start: int
    response_end: int  # exclusive
    response_tokens: int  # response tokens before truncation
    truncated: bool

    @classmethod
    def from_full(cls, record_id: str, ids: list[int], start: int, end: int, max_length: int) -> ScoringText:
        """Cut `ids` to `max_length`, keeping the response span [start, end) consistent."""
        return cls(
            record_id=record_id,
            input_ids=list(ids[:max_length]),
            response_start=min(start, max_length),
            response_end=min(end, max_length),
            response_tokens=max(0, end - start),
            truncated=len(ids) > max_length,
        )


class ScoringTextError(ValueError):
    """A record whose text cannot be laid out for scoring; the message is the reject reason."""


def official_instruction(instruction: str) -> str:
    """The official scorer's rewrite of the instruction before concatenation."""
    return instruction.strip().replace("Input: ", "Input:").replace("Output: ", "Output:")


def raw_scoring_text(tokenizer: Any, record_id: str, instruction: str, response: str, max_length: int) -> ScoringText:
    """The official raw concatenation x + y (the tokenizer's usual special tokens included)."""
    prefix = official_instruction(instruction)
    ids = tokenizer(prefix + response)["input_ids"]
    start = len(tokenizer(prefix)["input_ids"])
    return ScoringText.from_full(record_id, ids, start, len(ids), max_length)


def chat_scoring_text(
    tokenizer: Any,
    record_id: str,
    messages: list[dict[str, str]],
    response: str,
    max_length: int,
    chat_template_kwargs: dict[str, Any] | None = None,
) -> ScoringText:
    """The conversation + response through the chat template; response tokens found by offsets."""
    try:
        prompt, full = render_conversation(tokenizer, messages, response, chat_template_kwargs)
    except ChatRenderError as exc:
        raise ScoringTextError(str(exc)) from exc
    begin = full.find(response, len(prompt))
    shown = response
    if begin < 0:  # templates that strip the assistant turn
        shown = response.strip()
        begin = full.find(shown, len(prompt)) if shown else -1
    if begin < 0:
        raise ScoringTextError("the chat template does not show the response verbatim")
    end = begin + len(shown)
    encoded = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(encoded["input_ids"])
    inside = [i for i, (first, last) in enumerate(encoded["offset_mapping"]) if begin <= first < end and last > first]
    if not inside:
        raise ScoringTextError("the response has no tokens")
    return ScoringText.from_full(record_id, ids, inside[0], inside[-1] + 1, max_length)


def layout_record(
    tokenizer: Any,
    record_id: str,
    messages: list[dict[str, str]],
    instruction: str,
    response: str,
    max_length: int,
    chat_template: bool,
    chat_template_kwargs: dict[str, Any] | None = None,
    conditional: bool = True,
) -> ScoringText:
    """The scoring text of one record in the configured layout; `conditional=False` drops the instruction."""
    if chat_template:
        turns = messages if conditional else [dict(m) for m in EMPTY_USER_TURN]
        return chat_scoring_text(tokenizer, record_id, turns, response, max_length, chat_template_kwargs)
    return raw_scoring_text(tokenizer, record_id, instruction if conditional else "", response, max_length)
