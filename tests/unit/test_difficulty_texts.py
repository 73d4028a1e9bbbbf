"""Scoring layouts: the official raw concatenation, chat-templated spans, truncation flags."""

from __future__ import annotations

import pytest

from compeffdist.difficulty.texts import (
    ScoringText,
    ScoringTextError,
    chat_scoring_text,
    layout_record,
    official_instruction,
    raw_scoring_text,
)

pytestmark = pytest.mark.unit
INSTRUCTION = "  Please analyze the sentiment.\n\nInput: the soup was cold\nOutput: "
RESPONSE = "The text is negative about the soup."


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_official_instruction_rewrite():
    assert official_instruction(INSTRUCTION) == "Please analyze the sentiment.\n\nInput:the soup was cold\nOutput:"


def test_raw_layout_counts_the_prefix_like_the_official_script(tokenizer):
    text = raw_scoring_text(tokenizer, "r1", INSTRUCTION, RESPONSE, max_length=512)
    prefix = official_instruction(INSTRUCTION)
    assert text.input_ids == tokenizer(prefix + RESPONSE)["input_ids"]
    assert text.response_start == len(tokenizer(prefix)["input_ids"])
    assert text.response_end == len(text.input_ids) and not text.truncated
    assert tokenizer.decode(text.input_ids[text.response_start :]).strip().endswith("soup.")


def test_chat_layout_scores_the_response_and_not_the_template_tokens(tokenizer):
    messages = [{"role": "user", "content": INSTRUCTION}]
    text = chat_scoring_text(tokenizer, "r1", messages, RESPONSE, max_length=512)
    assert tokenizer.decode(text.input_ids[text.response_start : text.response_end]) == RESPONSE
    assert text.response_end < len(text.input_ids)  # <|im_end|> after the response is not scored
    assert text.response_tokens == text.response_end - text.response_start


def test_chat_layout_rejects_a_template_that_hides_the_response(tokenizer):
    class Hiding:
        def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False):
            return "PROMPT:" + ("" if add_generation_prompt else "<redacted>")

    with pytest.raises(ScoringTextError, match="verbatim"):
        chat_scoring_text(Hiding(), "r1", [{"role": "user", "content": "x"}], RESPONSE, max_length=64)


def test_truncation_flags_a_cut_response_and_a_prompt_that_fills_the_window(tokenizer):
    messages = [{"role": "user", "content": INSTRUCTION}]
    full = chat_scoring_text(tokenizer, "r1", messages, RESPONSE, max_length=512)
    cut = chat_scoring_text(tokenizer, "r1", messages, RESPONSE, max_length=full.response_start + 2)
    assert cut.truncated and cut.response_end - cut.response_start == 2
    assert cut.response_tokens == full.response_tokens  # the untruncated count is kept
    filled = chat_scoring_text(tokenizer, "r1", messages, RESPONSE, max_length=full.response_start - 1)
    assert filled.truncated and filled.response_end == filled.response_start
    assert not ScoringText.from_full("r", [1, 2, 3], 1, 3, max_length=3).truncated


def test_unconditional_layout_drops_the_instruction(tokenizer):
    messages = [{"role": "user", "content": INSTRUCTION}]
    kwargs = {"max_length": 512, "chat_template_kwargs": None}
    for chat in (True, False):
        with_prompt = layout_record(tokenizer, "r", messages, INSTRUCTION, RESPONSE, chat_template=chat, **kwargs)
        alone = layout_record(
            tokenizer, "r", messages, INSTRUCTION, RESPONSE, chat_template=chat, conditional=False, **kwargs
        )
        assert len(alone.input_ids) < len(with_prompt.input_ids)
        assert (
            alone.input_ids[alone.response_start : alone.response_end]
            == (with_prompt.input_ids[with_prompt.response_start : with_prompt.response_end])
        )
