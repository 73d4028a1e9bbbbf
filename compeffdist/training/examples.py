"""Turn selected (messages, teacher response) records into token ids with loss on the response only.

The conversation is rendered with the student's own chat template; a token is trained on when
its first character lies in the assistant turn (everything after the rendered prompt with the
generation prompt), so tokenization boundaries never shift the mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from compeffdist.chat import ChatRenderError, check_messages, render_conversation

IGNORE_INDEX = -100


@dataclass(frozen=True)
class TokenizedExample:
    """One training document: ids, labels (-100 outside the response) and whether it was cut."""

    record_id: str
    input_ids: list[int]
    labels: list[int]
    truncated: bool

    @property
    def loss_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


@dataclass(frozen=True)
class RejectedExample:
    record_id: str
    field: str
    reason: str
    raw: str


def tokenize_example(
    tokenizer: Any,
    record_id: str,
    messages: list[dict[str, str]],
    response: str,
    max_seq_len: int,
    chat_template_kwargs: dict[str, Any] | None = None,
) -> TokenizedExample | RejectedExample:
    """Render, tokenize and mask one conversation; truncate it to `max_seq_len` tokens."""
    try:
        prompt, full = render_conversation(tokenizer, messages, response, chat_template_kwargs)
    except ChatRenderError as exc:
        return RejectedExample(record_id, "messages", str(exc), exc.rendered)
    encoded = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    input_ids = list(encoded["input_ids"])
    offsets = encoded["offset_mapping"]
    labels = [tid if start >= len(prompt) else IGNORE_INDEX for tid, (start, _) in zip(input_ids, offsets, strict=True)]
    truncated = len(input_ids) > max_seq_len
    input_ids, labels = input_ids[:max_seq_len], labels[:max_seq_len]
    if all(label == IGNORE_INDEX for label in labels):
        reason = "prompt fills max_seq_len: no response token left" if truncated else "response has no tokens"
        return RejectedExample(record_id, "response", reason, response)
    return TokenizedExample(record_id, input_ids, labels, truncated)


def build_examples(
    rows: list[dict[str, Any]],
    tokenizer: Any,
    max_seq_len: int,
    chat_template_kwargs: dict[str, Any] | None = None,
) -> tuple[list[TokenizedExample], list[RejectedExample]]:
    """Tokenize selection rows (record_id, messages as chat.MESSAGES_TYPE, response); bad rows come back as rejects."""
    examples: list[TokenizedExample] = []
    rejects: list[RejectedExample] = []
    for row in rows:
        record_id = str(row["record_id"])
        response = row.get("response")
        if not isinstance(response, str) or not response.strip():
            rejects.append(RejectedExample(record_id, "response", "empty or missing teacher response", repr(response)))
            continue
        try:
            messages = check_messages(row.get("messages"))
        except ValueError as exc:
            rejects.append(RejectedExample(record_id, "messages", str(exc), str(row.get("messages"))))
            continue
        result = tokenize_example(tokenizer, record_id, messages, response, max_seq_len, chat_template_kwargs)
        if isinstance(result, TokenizedExample):
            examples.append(result)
        else:
            rejects.append(result)
    return examples, rejects
