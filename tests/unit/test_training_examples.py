"""Chat-template tokenization: loss on the assistant response only, defensive parsing of records."""

from __future__ import annotations

import pytest

from compeffdist.training.examples import (
    IGNORE_INDEX,
    ChatRenderError,
    RejectedExample,
    TokenizedExample,
    build_examples,
    render_conversation,
    tokenize_example,
)

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def _row(record_id: str, content: str, response: str) -> dict:
    return {
        "record_id": record_id,
        "messages": [{"role": "user", "content": content}],
        "response": response,
    }


def test_labels_cover_exactly_the_assistant_turn(tokenizer):
    messages = [{"role": "user", "content": "Classify: the food was great."}]
    example = tokenize_example(tokenizer, "r1", messages, "positive", max_seq_len=256)
    assert isinstance(example, TokenizedExample)
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    prompt_len = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    assert example.labels[:prompt_len] == [IGNORE_INDEX] * prompt_len
    trained = [t for t in example.labels if t != IGNORE_INDEX]
    assert trained == example.input_ids[prompt_len:]
    # the response text plus the end-of-turn marker are what the student learns to emit
    assert tokenizer.decode(trained).startswith("positive<|im_end|>")


def test_truncation_keeps_prompt_and_cuts_response(tokenizer):
    messages = [{"role": "user", "content": "Summarize."}]
    full = tokenize_example(tokenizer, "r", messages, "good " * 100, max_seq_len=4096)
    limit = full.labels.count(IGNORE_INDEX) + 5
    cut = tokenize_example(tokenizer, "r", messages, "good " * 100, max_seq_len=limit)
    assert isinstance(cut, TokenizedExample) and cut.truncated and not full.truncated
    assert cut.input_ids == full.input_ids[:limit] and cut.labels == full.labels[:limit] and cut.loss_tokens == 5


def test_prompt_longer_than_max_seq_len_is_rejected(tokenizer):
    result = tokenize_example(tokenizer, "r", [{"role": "user", "content": "word " * 200}], "ok", max_seq_len=16)
    assert isinstance(result, RejectedExample) and "max_seq_len" in result.reason


def test_bad_rows_are_rejected_with_reasons(tokenizer):
    rows = [
        _row("ok", "Classify: fine.", "positive"),
        _row("empty", "Classify: fine.", "   "),
        {"record_id": "nomessages", "messages": [], "response": "x"},
        {"record_id": "assistant-last", "messages": [{"role": "assistant", "content": "hi"}], "response": "x"},
        {"record_id": "norole", "messages": [{"role": "robot", "content": "hi"}], "response": "x"},
    ]
    examples, rejects = build_examples(rows, tokenizer, max_seq_len=128)
    assert [e.record_id for e in examples] == ["ok"]
    reasons = {r.record_id: (r.field, r.reason) for r in rejects}
    assert reasons["empty"][0] == "response"
    assert reasons["nomessages"] == ("messages", reasons["nomessages"][1]) and "non-empty" in reasons["nomessages"][1]
    assert "last message" in reasons["assistant-last"][1]
    assert "unknown role" in reasons["norole"][1]


def test_template_that_rewrites_the_prompt_is_rejected(tokenizer):
    class RewritingTemplate:
        def apply_chat_template(self, messages, tokenize, add_generation_prompt=False):
            return "A" if add_generation_prompt else "B" + messages[-1]["content"]

    result = tokenize_example(RewritingTemplate(), "r", [{"role": "user", "content": "x"}], "y", max_seq_len=8)
    assert isinstance(result, RejectedExample) and result.field == "messages"


def test_training_and_difficulty_scoring_share_one_rendering(tokenizer):
    """The tokens scored for difficulty are the response tokens trained on (same text, same prefix check)."""
    from compeffdist.difficulty.texts import ScoringTextError, chat_scoring_text

    messages = [{"role": "user", "content": "Please rate this: the soup was cold."}]
    response = "The text is negative about the soup."
    trained = tokenize_example(tokenizer, "r", messages, response, max_seq_len=256)
    scored = chat_scoring_text(tokenizer, "r", messages, response, max_length=256)
    assert isinstance(trained, TokenizedExample) and trained.input_ids == scored.input_ids
    labelled = [i for i, label in enumerate(trained.labels) if label != IGNORE_INDEX]
    # Training also learns the end-of-turn tokens after the response; scoring stops at the response.
    assert labelled[0] == scored.response_start and scored.response_end <= labelled[-1] + 1
    span = list(range(scored.response_start, scored.response_end))
    assert labelled[: len(span)] == span

    class RewritingTemplate:
        def apply_chat_template(self, messages, tokenize, add_generation_prompt=False):
            return "A" if add_generation_prompt else "B" + messages[-1]["content"]

    with pytest.raises(ChatRenderError) as raised:
        render_conversation(RewritingTemplate(), messages, response)
    rejected = tokenize_example(RewritingTemplate(), "r", messages, response, max_seq_len=8)
    assert isinstance(rejected, RejectedExample) and rejected.reason == str(raised.value)
    assert rejected.raw == raised.value.rendered == "B" + response
    with pytest.raises(ScoringTextError, match=str(raised.value)):
        chat_scoring_text(RewritingTemplate(), "r", messages, response, max_length=8)
