"""Chat formatting shared by engines, scoring, training and evaluation."""

from __future__ import annotations

import pytest

from compeffdist.chat import encode_prompt

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def bos_tokenizer():
    """A word-level tokenizer that, like Llama 3's and Gemma's, prepends BOS to every encoding."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<s>": 0, "<unk>": 1, "hello": 2, "world": 3}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 0)])
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", unk_token="<unk>")


def test_raw_prompt_gets_the_tokenizers_bos(bos_tokenizer):
    assert encode_prompt(bos_tokenizer, "hello world") == [0, 2, 3]


def test_chat_rendered_prompt_keeps_its_own_bos_only(bos_tokenizer):
    # A chat template already wrote "<s>"; the tokenizer must not add a second one.
    assert encode_prompt(bos_tokenizer, "<s> hello world") == [0, 2, 3]
    assert bos_tokenizer("<s> hello world")["input_ids"] == [0, 0, 2, 3]  # what the naive call did
