"""Held-out split, answer labels and the teacher-agreement comparison (no model needed)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from compeffdist.config import HeldoutConfig
from compeffdist.evaluation.agreement import AGREEMENT_SCHEMA
from compeffdist.evaluation.comparison import f1_measures, headline, heldout_measures, markdown
from compeffdist.evaluation.heldout import heldout_ids, heldout_mask
from compeffdist.evaluation.labels import answer_label

pytestmark = pytest.mark.unit


def test_heldout_split_is_a_stable_fraction_of_ids():
    from compeffdist.idset import digests

    ids = [f"r{i:05d}" for i in range(4000)]
    settings = HeldoutConfig(fraction=0.2, seed=7)
    mask = heldout_ids(ids, settings)
    assert 0.18 < mask.mean() < 0.22
    assert np.array_equal(mask, heldout_mask(digests(ids), settings))  # selection decides on digests alone
    assert np.array_equal(mask, heldout_ids(list(reversed(ids)), settings)[::-1])  # per id, not per position
    assert not np.array_equal(mask, heldout_ids(ids, HeldoutConfig(fraction=0.2, seed=8)))
    assert not heldout_ids(ids, HeldoutConfig()).any()  # fraction 0: nothing held out
    assert (heldout_ids(ids, HeldoutConfig(fraction=0.4, seed=7)) >= mask).all()  # a larger fraction adds records


@pytest.mark.parametrize(
    ("answer", "label"),
    [
        ("The sentiment of this review is Positive.", "positive"),
        ("Negative. It is not positive at all.", "negative"),
        ("neutral", "neutral"),
        ("Output: Sarcastic!!\nbecause of the tone", "output sarcastic"),
        ("\n  @user thanks for saying my wife and I were late", "user thanks for saying my wife"),
        ("positively great", "positively great"),  # polarity as a whole word only
        ("", None),
        ("  \n ", None),
    ],
)
def test_answer_label_is_the_first_polarity_or_the_opening(answer, label):
    assert answer_label(answer) == label


def _agreement(model: str, labels: list[str | None], nll: list[float | None]) -> list[dict]:
    teacher = ["positive", "negative", "positive", None, "neutral", "negative"]
    return [
        {"model": model, "record_id": f"r{i}", "kind": "classification", "nll": n, "tokens": 4 if n else 0,
         "nll_error": None if n else "too long", "teacher_label": t, "model_label": m, "model_answer": ""}
        for i, (t, m, n) in enumerate(zip(teacher, labels, nll, strict=True))
    ]  # fmt: skip


def test_comparison_pairs_records_and_reports_the_difference():
    rows = _agreement("student", ["positive", "negative", "positive", "positive", None, "negative"],
                      [4.0, 4.0, 4.0, 4.0, 4.0, 4.0])  # fmt: skip
    rows += _agreement("base_student", ["negative", "negative", None, None, "positive", "positive"],
                       [12.0, 12.0, 12.0, 12.0, None, 12.0])  # fmt: skip
    measures = heldout_measures(pa.Table.from_pylist(rows, schema=AGREEMENT_SCHEMA), resamples=500)
    # r4 could not be scored by the base student: left out of NLL for both models.
    assert measures.records == 5 and measures.skipped == {"student": 0, "base_student": 1}
    assert measures.nll["student"].estimate == pytest.approx(1.0) and measures.nll["base_student"].estimate == 3.0
    # Five records have a teacher label; student agrees on 4, base on 1.
    assert measures.labeled == 5
    assert measures.agreement["student"].estimate == pytest.approx(80.0)
    assert measures.agreement["base_student"].estimate == pytest.approx(20.0)
    sentence = headline(measures, {}, 0.95)
    assert sentence.startswith("On 5 held-out teacher-labeled records never trained on, the trained student is closer")
    assert "excludes 0" in sentence
    table = markdown(measures, {}, 0.95)
    assert "| student | 1.000 [1.000, 1.000] |" in table and "Trained student − base student" in table


def test_f1_measures_average_datasets_and_seeds():
    rows = [
        {"model": "student", "dataset": "a", "seed": 42, "n": 3, "f1": 0.5, "f1_replicates": [0.4, 0.6]},
        {"model": "student", "dataset": "a", "seed": 52, "n": 3, "f1": 0.7, "f1_replicates": [0.6, 0.8]},
        {"model": "student", "dataset": "b", "seed": 42, "n": 3, "f1": 0.1, "f1_replicates": [0.0, 0.2]},
        {"model": "student", "dataset": "b", "seed": 52, "n": 3, "f1": 0.1, "f1_replicates": [0.0, 0.2]},
    ]
    measures = f1_measures(rows)["student"]
    assert measures["a"].estimate == pytest.approx(60.0) and list(measures["a"].replicates) == [50.0, 70.0]
    assert measures["overall"].estimate == pytest.approx(35.0)
    assert list(measures["overall"].replicates) == pytest.approx([25.0, 45.0])
