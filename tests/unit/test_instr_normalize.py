"""Attribute-name normalization (':' '/' 'use of' rules), aggregation and the strict count threshold."""

from __future__ import annotations

import pytest

from compeffdist.instructions.normalize import (
    Mention,
    aggregate_attributes,
    count_histogram,
    frequent_attributes,
    normalize_attribute_name,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("tone: sarcastic", ["tone"]),
        ("Tone: Contrarian/Defiant", ["tone"]),  # ':' wins over '/'
        ("regret/anger", ["regret", "anger"]),
        ("regret / anger/", ["regret", "anger"]),
        ("use of sarcasm", ["sarcasm"]),
        ("Use of Humor/irony", ["use of humor", "irony"]),  # '/' wins over 'use of'
        ("the use of emojis: many", ["the use of emojis"]),  # ':' first, then nothing else applies
        ("**Emotional  Intensity**.", ["emotional intensity"]),
        ("attribute: politeness", ["politeness"]),
        (":", []),
        ("", []),
    ],
)
def test_normalization_rules_in_order(raw, expected):
    assert normalize_attribute_name(raw) == expected


def _mentions() -> list[Mention]:
    mentions = [Mention(f"t{i}", "Tone", "attitude", "x") for i in range(10)]
    mentions += [Mention("t0", "tone: angry", "attitude", "angry")]  # same text again
    mentions += [Mention(f"t{i}", "use of sarcasm", "irony" if i < 6 else "mockery", "") for i in range(10)]
    mentions += [Mention(f"t{i}", "regret/anger", "", "") for i in range(3)]
    return mentions


def test_counts_are_mentions_by_default_like_the_official_collect_attr():
    attributes = aggregate_attributes(_mentions())
    assert attributes["tone"].count == 11  # "tone: angry" in t0 is one more occurrence of "tone"
    assert attributes["tone"].variants == {"tone": 10, "tone: angry": 1}
    assert [a.name for a in frequent_attributes(attributes, 10)] == ["tone"]  # 11 > 10; sarcasm's 10 is not


def test_counts_per_text_and_threshold_is_strict():
    attributes = aggregate_attributes(_mentions(), count="texts")
    assert attributes["tone"].count == 10  # t0 names tone twice: one text
    assert attributes["sarcasm"].count == 10 and attributes["sarcasm"].description == "irony"
    assert attributes["regret"].count == attributes["anger"].count == 3
    assert frequent_attributes(attributes, 10) == []  # 10 is not > 10
    assert [a.name for a in frequent_attributes(attributes, 9)] == ["sarcasm", "tone"]  # ties by name
    assert [a.name for a in frequent_attributes(attributes, 2)] == ["sarcasm", "tone", "anger", "regret"]


def test_count_histogram_bins_double():
    counts = [1, 2, 3, 4, 5, 11, 16, 17, 11702]
    assert count_histogram(counts) == {"1": 1, "2": 1, "3-4": 2, "5-8": 1, "9-16": 2, "17-32": 1, "8193-16384": 1}
    assert count_histogram([]) == {}


def test_description_ties_break_alphabetically():
    mentions = [Mention("a", "tone", "b desc", ""), Mention("b", "tone", "a desc", "")]
    assert aggregate_attributes(mentions)["tone"].top_descriptions(2) == ["a desc", "b desc"]
