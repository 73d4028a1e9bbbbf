"""Attribute-name normalization (':' '/' 'use of' rules), aggregation and the strict count threshold."""

from __future__ import annotations

import pytest

from compeffdist.instructions.normalize import (
    Mention,
    aggregate_attributes,
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


def test_counts_are_per_text_and_threshold_is_strict():
    mentions = [Mention(f"t{i}", "Tone", "attitude", "x") for i in range(11)]
    mentions += [Mention("t0", "tone: angry", "attitude", "angry")]  # same text again: still one
    mentions += [Mention(f"t{i}", "use of sarcasm", "irony" if i < 6 else "mockery", "") for i in range(10)]
    mentions += [Mention(f"t{i}", "regret/anger", "", "") for i in range(3)]
    attributes = aggregate_attributes(mentions)
    assert attributes["tone"].count == 11
    assert attributes["tone"].variants == {"tone": 11, "tone: angry": 1}
    assert attributes["sarcasm"].count == 10 and attributes["sarcasm"].description == "irony"
    assert attributes["regret"].count == attributes["anger"].count == 3
    assert [a.name for a in frequent_attributes(attributes, 10)] == ["tone"]  # 10 is not > 10
    assert [a.name for a in frequent_attributes(attributes, 2)] == ["tone", "sarcasm", "anger", "regret"]


def test_description_ties_break_alphabetically():
    mentions = [Mention("a", "tone", "b desc", ""), Mention("b", "tone", "a desc", "")]
    assert aggregate_attributes(mentions)["tone"].top_descriptions(2) == ["a desc", "b desc"]
