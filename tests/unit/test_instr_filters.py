"""Quality filters: two-text tasks, leaked reference-text mentions, word-set Jaccard near-duplicates, the demo
filter shared by every stage, and the task kind from the declared type or from cues."""

from __future__ import annotations

import pytest

from compeffdist.instructions.filters import (
    NearDuplicateFilter,
    clean_demos,
    jaccard,
    keep_items,
    mentions_reference_text,
    mentions_two_texts,
    task_kind,
    word_set,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Compare Text 1 and Text 2 for sentiment.", True),
        ("Given text1 and text2, which is angrier?", True),
        ("Does Text A sound more polite than text B?", True),
        ("Contrast plot 1 with plot 2.", True),
        ("Which of review 1 and review 2 is sarcastic?", True),
        ("Is the first text more positive than the second text?", True),
        ("Label text 1 of the review.", False),  # one half of a pair is not a comparison
        ("Classify the sentiment of this text.", False),
    ],
)
def test_two_text_pairs(text, expected):
    assert mentions_two_texts(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("As in the reference text, the staff were rude.", True),
        ("Mimicking the Reference  Texts above: great food!", True),
        ("The text references a movie.", False),
    ],
)
def test_reference_text_mentions(text, expected):
    assert mentions_reference_text(text) is expected


def test_jaccard_on_word_sets():
    assert word_set("The food, the FOOD!") == frozenset({"the", "food"})
    assert jaccard(word_set("a b c d"), word_set("a b c e")) == pytest.approx(3 / 5)
    assert jaccard(frozenset(), frozenset()) == 1.0


def test_near_duplicate_threshold_is_inclusive_and_order_decides_the_survivor():
    # "what is the tone of this text" vs "+ review": 7 shared words of 8 -> 0.875.
    unique = NearDuplicateFilter(0.875)
    assert unique.accept("What is the tone of this text?")
    assert not unique.accept("what is the tone of this text")  # exact duplicate (case, punctuation aside)
    assert not unique.accept("What is the tone of this text review?")  # 0.875 >= threshold
    assert unique.accept("Which emotions does the writer show?")
    looser = NearDuplicateFilter(0.9)
    assert looser.accept("What is the tone of this text?") and looser.accept("What is the tone of this text review?")


def test_clean_demos_counts_each_reason_and_respects_the_limit():
    demos = [
        {"input": "The staff were lovely.", "output": "positive"},
        {"input": "Compare text 1 with text 2.", "output": "same"},
        {"input": "Like the reference text, it was cold.", "output": "negative"},
        {"input": "the staff were lovely", "output": "positive"},
        {"input": "I waited an hour.", "output": "negative"},
        {"input": "Best pizza in town.", "output": "positive"},
    ]
    kept, dropped = clean_demos(demos, NearDuplicateFilter(0.85), limit=2)
    assert kept == [demos[0], demos[4]]
    assert dropped == {"two_texts": 1, "reference_text": 1, "near_duplicate": 1, "over_limit": 1}
    # A filter seeded with earlier inputs (seed demos) keeps later demos away from them; no limit: no cut.
    seen = NearDuplicateFilter(0.85)
    seen.accept("I waited an hour.")
    kept, dropped = clean_demos(demos[4:], seen)
    assert kept == [demos[5]] and dropped == {"near_duplicate": 1}


@pytest.mark.parametrize(
    ("declared", "name", "description", "expected"),
    [
        ("Scoring/Rating", "Tone", "Label the tone.", "rating"),  # a declared type wins over cues
        ("information_extraction", "Tone", "Classify it.", "extraction"),
        ("", "Aspect table", "Return a JSON object with fields aspect and sentiment.", "structured"),
        ("", "Intensity", "Rate the intensity on a scale from 1 to 5.", "rating"),
        ("", "Triggers", "Extract the keywords that trigger anger.", "extraction"),
        ("", "Sarcasm", "Detect whether the text is sarcastic.", "classification"),
        ("other", "Mood", "Describe the mood.", "classification"),  # no cue: the default
    ],
)
def test_task_kind_from_declared_type_or_cues(declared, name, description, expected):
    assert task_kind(declared, name, description) == expected


def test_keep_items_filters_prompts_in_order_and_remembers_only_kept_ones():
    prompts = [
        "Please analyze the tone of this text.",
        "Compare text 1 with text 2 and say which is angrier.",
        "Use the reference text to judge the sentiment.",
        "Please analyze the tone of this text!",  # a near-duplicate of the first
        "What emotions does the author express?",
        "Which aspects does the writer praise?",  # past the limit of 2 kept prompts
    ]
    unique = NearDuplicateFilter(0.85)
    kept, dropped = keep_items(prompts, str, str, unique, limit=2)
    assert kept == [prompts[0], prompts[4]]
    assert dropped == {"two_texts": 1, "reference_text": 1, "near_duplicate": 1, "over_limit": 1}
    assert unique.accept("Which aspects does the writer praise?")  # dropped items were not remembered
