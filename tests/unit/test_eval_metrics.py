"""SentiBench metrics pinned on hand-computed cases (and classification against scikit-learn)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compeffdist.evaluation.metrics import (
    INVALID,
    classification_scores,
    locate,
    opener_scores,
    token_index_sets,
    tuple_scores,
)

pytestmark = pytest.mark.unit


def test_macro_f1_and_accuracy_by_hand():
    # label a: P = 1/1, R = 1/2, F1 = 2/3; label b: P = 2/3, R = 2/2, F1 = 4/5
    scores = classification_scores(["a", "a", "b", "b"], ["a", "b", "b", "b"])
    assert scores.f1 == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert scores.accuracy == pytest.approx(0.75)
    assert scores.precision == pytest.approx((1 + 2 / 3) / 2)
    assert scores.recall == pytest.approx((1 / 2 + 1) / 2)


def test_macro_f1_counts_a_predicted_label_absent_from_gold():
    # 'c' is predicted but never gold: it contributes F1 = 0 to the macro average, as in sklearn.
    scores = classification_scores(["a", "b"], ["a", "c"])
    assert scores.f1 == pytest.approx((1 + 0 + 0) / 3)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("xyz"), st.sampled_from("xyz")), min_size=1, max_size=40))
def test_macro_f1_matches_scikit_learn(pairs):
    from sklearn.metrics import accuracy_score, f1_score

    gold, predicted = [g for g, _ in pairs], [p for _, p in pairs]
    scores = classification_scores(gold, predicted)
    assert scores.f1 == pytest.approx(f1_score(gold, predicted, average="macro", zero_division=0))
    assert scores.accuracy == pytest.approx(accuracy_score(gold, predicted))


def test_tuple_micro_f1_by_hand():
    gold = [[("pizza", "positive"), ("service", "negative")], []]
    predicted = [[("pizza", "positive"), ("waiter", "negative")], [INVALID]]
    scores = tuple_scores(gold, predicted)
    # 1 of 3 predictions matches (the invalid item counts as a prediction); 1 of 2 gold tuples is found.
    assert scores.precision == pytest.approx(1 / 3)
    assert scores.recall == pytest.approx(1 / 2)
    assert scores.f1 == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))


def test_tuple_scores_with_no_prediction_have_precision_one_and_f1_zero():
    scores = tuple_scores([[("a", "positive")]], [[]])
    assert (scores.precision, scores.recall, scores.f1) == (1.0, 0.0, 0.0)


def test_tuples_are_matched_within_their_own_sentence():
    # The right tuple predicted for the wrong sentence is no match.
    scores = tuple_scores([[("a", "positive")], [("b", "negative")]], [[("b", "negative")], [("a", "positive")]])
    assert scores.f1 == 0.0


def test_token_index_sets_and_locate():
    sentence = "The room was very clean ."
    assert token_index_sets(sentence, "4:8") == {1}
    assert token_index_sets(sentence, "13:23") == {3, 4}
    assert token_index_sets(sentence, "0:3;24:25") == {0, 5}
    assert token_index_sets(sentence, "") == frozenset()
    assert locate(sentence, "very clean") == "13:23"
    assert locate(sentence, "room AND clean") == "4:8;18:23"
    assert locate(sentence, "NULL") == "" and locate(sentence, "absent words") == ""


def _opinion(sentence: str, holder: str, target: str, expression: str, polarity: str):
    spans = (token_index_sets(sentence, locate(sentence, x)) for x in (holder, target, expression))
    return (*spans, polarity)


def test_opener_weighted_tuple_f1_by_hand():
    sentence = "The room was very clean ."
    gold = [[_opinion(sentence, "NULL", "room", "very clean", "positive")]]
    close = _opinion(sentence, "NULL", "The room", "clean", "positive")
    # by prediction: holder 1 (both empty), target |{1}|/|{0,1}| = 1/2, expression |{4}|/|{4}| = 1 -> 5/6
    # by gold:       holder 1, target |{1}|/|{1}| = 1, expression |{4}|/|{3,4}| = 1/2            -> 5/6
    scores = opener_scores(gold, [[close]])
    assert scores.precision == pytest.approx(5 / 6) and scores.recall == pytest.approx(5 / 6)
    # A second prediction with the wrong polarity earns nothing but still counts as a prediction.
    wrong = _opinion(sentence, "NULL", "room", "very clean", "negative")
    scores = opener_scores(gold, [[close, wrong]])
    assert scores.precision == pytest.approx(5 / 12) and scores.recall == pytest.approx(5 / 6)
    assert scores.f1 == pytest.approx(2 * (5 / 12) * (5 / 6) / (5 / 12 + 5 / 6))


def test_opener_needs_every_element_to_overlap():
    sentence = "The room was very clean ."
    gold = [[_opinion(sentence, "NULL", "room", "very clean", "positive")]]
    no_target_overlap = _opinion(sentence, "NULL", "The", "very clean", "positive")
    holder_where_gold_has_none = _opinion(sentence, "room", "room", "very clean", "positive")
    assert opener_scores(gold, [[no_target_overlap]]).f1 == 0.0
    assert opener_scores(gold, [[holder_where_gold_has_none]]).f1 == 0.0


def test_opener_sentence_without_opinions():
    # Nothing to find and nothing predicted: precision 1 by convention, recall 0 over an empty gold.
    assert opener_scores([[]], [[]]).precision == 1.0
