"""Bootstrap intervals: shared resamples pair models up, and the intervals agree with scipy's where both apply."""

from __future__ import annotations

import numpy as np
import pytest

from compeffdist.evaluation.bootstrap import (
    interval,
    macro_f1_replicates,
    mean_replicates,
    over_training_seeds,
    ratio_replicates,
    resample_indices,
)

pytestmark = pytest.mark.unit


def test_resamples_depend_on_the_key_and_size_only():
    a = resample_indices("sentibench|sc/sst2|42", 30, 200)
    assert a.shape == (200, 30) and a.min() >= 0 and a.max() < 30
    assert np.array_equal(a, resample_indices("sentibench|sc/sst2|42", 30, 200))
    assert not np.array_equal(a, resample_indices("sentibench|sc/sst2|52", 30, 200))


def test_mean_interval_matches_scipy_percentile_bootstrap():
    from scipy.stats import bootstrap

    values = np.random.default_rng(3).binomial(1, 0.6, size=80).astype(float)
    mine = interval(values.mean(), mean_replicates(values, "k", 4000))
    theirs = bootstrap(
        (values,), np.mean, n_resamples=4000, method="percentile", random_state=np.random.default_rng(0)
    ).confidence_interval
    assert mine.low == pytest.approx(theirs.low, abs=0.02) and mine.high == pytest.approx(theirs.high, abs=0.02)
    assert mine.low < values.mean() < mine.high


def test_paired_difference_is_narrower_than_the_unpaired_spread():
    # Two models that agree on most items: the paired difference is resolved although each mean's CI is wide.
    rng = np.random.default_rng(1)
    base = rng.binomial(1, 0.5, size=60).astype(float)
    trained = base.copy()
    flip = np.flatnonzero(base == 0)[:8]
    trained[flip] = 1.0  # 8 items fixed, nothing broken
    a, b = mean_replicates(trained, "agreement", 2000), mean_replicates(base, "agreement", 2000)
    difference = interval(trained.mean() - base.mean(), a - b)
    assert difference.excludes_zero and difference.low > 0
    single = interval(base.mean(), b)
    assert single.high - single.low > difference.high - difference.low


def test_ratio_replicates_weight_records_by_tokens():
    nll, tokens = np.array([10.0, 1.0]), np.array([10.0, 1.0])
    assert np.allclose(ratio_replicates(nll, tokens, "nll", 50), 1.0)


def test_vectorized_macro_f1_equals_sklearn_on_every_resample():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(2)
    gold = list(rng.choice(["positive", "negative", "neutral"], size=25))
    predicted = list(rng.choice(["positive", "negative"], size=25))
    fast = macro_f1_replicates(gold, predicted, "sc/twitter|42", 300)
    for rows, value in zip(resample_indices("sc/twitter|42", 25, 300), fast, strict=True):
        expected = f1_score([gold[i] for i in rows], [predicted[i] for i in rows], average="macro", zero_division=0)
        assert value == pytest.approx(expected, abs=1e-12)


def test_seed_level_resampling_widens_the_interval_when_seeds_disagree():
    items = mean_replicates(np.random.default_rng(4).binomial(1, 0.5, size=100).astype(float), "x", 1000)
    agreeing = over_training_seeds([items, items, items], "arm")
    spread = over_training_seeds([items - 0.2, items, items + 0.2], "arm")
    assert np.allclose(agreeing, items)
    width = lambda r: np.percentile(r, 97.5) - np.percentile(r, 2.5)  # noqa: E731
    assert width(spread) > width(agreeing)


def test_an_interval_without_finite_replicates_is_nan():
    result = interval(0.5, np.array([np.nan, np.inf]))
    assert np.isnan(result.low) and not result.excludes_zero


def test_report_says_whether_five_points_are_resolvable():
    from compeffdist.evaluation.report import resolution_note

    def summary(width: float) -> dict:
        dataset = {"f1": 50.0, "std": 0.0, "ci": [50 - width, 50 + width]}
        return {"student": {"datasets": {"sc/sst2": dataset}, "overall": 50.0, "overall_ci": [50 - width, 50 + width]}}

    narrow, wide = resolution_note(summary(2.0), 200), resolution_note(summary(8.0), 20)
    assert "is resolvable" in narrow[1] and "200 test examples" in narrow[1]
    assert "not resolvable at this budget" in wide[1] and "16.0 points wide" in wide[1]
    assert resolution_note({"student": {"datasets": {}, "overall": 0.0}}, 5) == []  # no intervals: nothing claimed
