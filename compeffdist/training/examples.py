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


@dataclass(frozen=True)
class _Rendered:
    record_id: str
    prompt: str
    full: str
    response: str


def _render(
    record_id: str, messages: Any, response: Any, tokenizer: Any, chat_template_kwargs: dict[str, Any] | None
) -> _Rendered | RejectedExample:
    """Check one record and render it with the chat template, or say why it cannot be trained on."""
    if not isinstance(response, str) or not response.strip():
        return RejectedExample(record_id, "response", "empty or missing teacher response", repr(response))
    try:
        checked = check_messages(messages)
    except ValueError as exc:
        return RejectedExample(record_id, "messages", str(exc), str(messages))
    try:
        prompt, full = render_conversation(tokenizer, checked, response, chat_template_kwargs)
    except ChatRenderError as exc:
        return RejectedExample(record_id, "messages", str(exc), exc.rendered)
    return _Rendered(record_id, prompt, full, response)


def _masked(
    item: _Rendered, input_ids: list[int], offsets: list[Any], max_seq_len: int
) -> TokenizedExample | RejectedExample:
    """Labels -100 before the assistant turn, truncation to `max_seq_len`; a reject when no response token is left."""
    labels = [
        tid if start >= len(item.prompt) else IGNORE_INDEX for tid, (start, _) in zip(input_ids, offsets, strict=True)
    ]
    truncated = len(input_ids) > max_seq_len
    input_ids, labels = input_ids[:max_seq_len], labels[:max_seq_len]
    if all(label == IGNORE_INDEX for label in labels):
        reason = "prompt fills max_seq_len: no response token left" if truncated else "response has no tokens"
        return RejectedExample(item.record_id, "response", reason, item.response)
    return TokenizedExample(item.record_id, input_ids, labels, truncated)


def build_examples(
    rows: list[dict[str, Any]],
    tokenizer: Any,
    max_seq_len: int,
    chat_template_kwargs: dict[str, Any] | None = None,
) -> tuple[list[TokenizedExample], list[RejectedExample]]:
    """Tokenize selection rows (record_id, messages as chat.MESSAGES_TYPE, response); bad rows come back as rejects.

    The conversations are rendered one by one and tokenized in one batched (Rust) tokenizer call.
    """
    rendered: list[_Rendered] = []
    rejects: list[RejectedExample] = []
    for row in rows:
        item = _render(str(row["record_id"]), row.get("messages"), row.get("response"), tokenizer, chat_template_kwargs)
        (rendered if isinstance(item, _Rendered) else rejects).append(item)
    if not rendered:
        return [], rejects
    encoded = tokenizer([item.full for item in rendered], add_special_tokens=False, return_offsets_mapping=True)
    examples: list[TokenizedExample] = []
    for item, ids, offsets in zip(rendered, encoded["input_ids"], encoded["offset_mapping"], strict=True):
        result = _masked(item, list(ids), offsets, max_seq_len)
        (examples if isinstance(result, TokenizedExample) else rejects).append(result)
    return examples, rejects


def tokenize_example(
    tokenizer: Any,
    record_id: str,
    messages: list[dict[str, str]],
    response: str,
    max_seq_len: int,
    chat_template_kwargs: dict[str, Any] | None = None,
) -> TokenizedExample | RejectedExample:
    """Render, tokenize and mask one conversation; truncate it to `max_seq_len` tokens."""
    examples, rejects = build_examples(
        [{"record_id": record_id, "messages": messages, "response": response}], tokenizer, max_seq_len,
        chat_template_kwargs,
    )  # fmt: skip
    return examples[0] if examples else rejects[0]
