"""Difficulty-prioritized sampling: closed-form exponent, expected fractions, preference, determinism."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compeffdist.difficulty.sampling import (
    sample_group,
    select,
    soft_probabilities,
    systematic_sample,
    tent_curve,
    tent_exponent,
)

pytestmark = pytest.mark.unit
rates = st.floats(min_value=0.05, max_value=1.0)
peaks = st.floats(min_value=0.05, max_value=1.0)
seeds = st.integers(min_value=0, max_value=2**31)


def test_closed_form_exponent_and_curve():
    assert tent_exponent(0.1) == pytest.approx(9) and tent_exponent(0.5) == 1 and tent_exponent(0.2) == pytest.approx(4)
    assert tent_curve(np.array([0.25, 0.5, 0.75, 1.0]), a=0.5, b=1).tolist() == [0.5, 1.0, 0.5, 0.0]
    assert tent_curve(np.array([0.5, 1.0]), a=1.0, b=2).tolist() == [0.25, 1.0]
    with pytest.raises(ValueError):
        tent_exponent(0.0)


@settings(max_examples=60, deadline=None)
@given(rate=rates, a=peaks)
def test_the_curve_integrates_to_the_rate_for_any_peak(rate, a):
    # Midpoint rule on a fine grid: the expected kept fraction is r whatever a is.
    assert soft_probabilities(20_000, rate, a).mean() == pytest.approx(rate, abs=2e-3)


@settings(max_examples=25, deadline=None)
@given(rate=rates, a=peaks, seed=seeds, mode=st.sampled_from(["bernoulli", "exact"]))
def test_realized_fraction_is_close_to_the_rate(rate, a, seed, mode):
    n = 4000
    difficulties = np.random.default_rng(seed).random(n)
    ids = [f"r{i}" for i in range(n)]
    result = select(ids, difficulties, None, "soft", rate, a=a, mode=mode, seed=seed)
    expected = soft_probabilities(n, rate, a).sum()
    tolerance = 1.0 if mode == "exact" else 5 * np.sqrt(expected) + 1  # exact: floor or ceil of the expectation
    assert abs(result.kept.sum() - expected) <= tolerance
    assert abs(result.rate - rate) < 0.05


@settings(max_examples=25, deadline=None)
@given(rate=st.floats(min_value=0.05, max_value=0.6), seed=seeds)
def test_with_a_equal_to_one_harder_items_are_preferred(rate, seed):
    probability = soft_probabilities(500, rate, 1.0)
    assert np.all(np.diff(probability) > 0)  # strictly increasing with difficulty
    difficulties = np.random.default_rng(seed).normal(size=2000)
    result = select([f"r{i}" for i in range(2000)], difficulties, None, "soft", rate, a=1.0, seed=seed)
    kept, dropped = difficulties[result.kept], difficulties[~result.kept]
    assert kept.mean() > dropped.mean()
    harder_half = difficulties > np.median(difficulties)
    assert result.kept[harder_half].mean() > result.kept[~harder_half].mean()


def test_a_below_one_prefers_the_peak_quantile_over_the_hardest():
    probability = soft_probabilities(100, 0.2, 0.7)
    assert int(np.argmax(probability)) in (69, 70)
    assert probability[-1] < probability[70] and probability[0] < probability[70]


@settings(max_examples=20, deadline=None)
@given(
    seed=seeds,
    method=st.sampled_from(["soft", "hard", "random"]),
    mode=st.sampled_from(["bernoulli", "exact"]),
    rate=rates,
)
def test_same_seed_same_selection_whatever_the_input_order(seed, method, mode, rate):
    n = 300
    rng = np.random.default_rng(seed)
    ids = [f"r{i}" for i in range(n)]
    difficulties = np.round(rng.random(n), 2)  # with ties
    groups = [int(g) for g in rng.integers(0, 7, n)]
    first = select(ids, difficulties, groups, method, rate, a=0.8, mode=mode, seed=seed)
    again = select(ids, difficulties, groups, method, rate, a=0.8, mode=mode, seed=seed)
    assert first.kept.tolist() == again.kept.tolist()
    order = rng.permutation(n)
    shuffled = select(
        [ids[i] for i in order], difficulties[order], [groups[i] for i in order], method, rate, 0.8, mode, seed
    )
    assert sorted(ids[i] for i in order[shuffled.kept]) == sorted(np.array(ids)[first.kept].tolist())


def test_different_seeds_give_different_selections():
    difficulties = np.random.default_rng(0).random(500)
    ids = [f"r{i}" for i in range(500)]
    picks = {tuple(select(ids, difficulties, None, "soft", 0.3, seed=s).kept) for s in range(4)}
    assert len(picks) == 4


def test_hard_keeps_the_hardest_and_never_the_whole_group_on_a_zero_quota():
    rng = np.random.default_rng(3)
    kept, probability = sample_group(np.array([0.3, 0.9, 0.1, 0.7, 0.5]), "hard", 0.4, 1.0, "exact", rng)
    assert kept.tolist() == [False, True, False, True, False] and probability.tolist() == [0, 1, 0, 1, 0]
    # r * n = 0.1: the quota rounds to 0 or 1, never to the whole group (the official [-0:] bug).
    sizes = {int(sample_group(np.arange(1.0, 2.0), "hard", 0.1, 1.0, "exact", np.random.default_rng(s))[0].sum())
             for s in range(50)}  # fmt: skip
    assert sizes == {0, 1}
    sizes = [int(sample_group(np.arange(5.0), "hard", 0.1, 1.0, "exact", np.random.default_rng(s))[0].sum())
             for s in range(400)]  # fmt: skip
    assert set(sizes) == {0, 1} and np.mean(sizes) == pytest.approx(0.5, abs=0.08)


def test_systematic_sampling_has_the_promised_marginals():
    probability = np.array([0.05, 0.2, 0.5, 0.9, 0.35])
    draws = np.array([systematic_sample(probability, np.random.default_rng(s)) for s in range(4000)])
    assert draws.mean(axis=0) == pytest.approx(probability, abs=0.03)
    assert set(draws.sum(axis=1).tolist()) <= {2, 3}  # floor and ceil of sum(p) = 2.0


def test_inprompt_groups_each_keep_about_the_rate_and_report_it():
    rng = np.random.default_rng(5)
    groups = [(c, f"t{t}") for c in range(3) for t in range(4) for _ in range(50)]
    ids = [f"r{i}" for i in range(len(groups))]
    result = select(ids, rng.random(len(ids)), groups, "soft", 0.2, mode="exact", seed=1)
    assert len(result.groups) == 12
    assert all(g.pool == 50 and abs(g.selected - g.expected) < 1 for g in result.groups)
    assert sum(g.selected for g in result.groups) == result.kept.sum()
    assert result.rate == pytest.approx(0.2, abs=0.01)


def test_random_keeps_a_fixed_size_uniform_sample():
    result = select([f"r{i}" for i in range(1000)], np.zeros(1000), None, "random", 0.1, seed=2)
    assert result.kept.sum() == 100 and set(result.probability.tolist()) == {0.1}


@pytest.mark.parametrize(("a", "rate"), [(0.01, 0.001), (0.05, 0.01), (0.999, 0.002)])
def test_the_curve_is_warning_free_for_small_peaks_and_low_rates(a, rate):
    # np.where evaluates both branches: unclamped, (x / a) ** b overflows past the peak (here up to 100 ** 999).
    x = (np.arange(2000) + 0.5) / 2000
    with warnings.catch_warnings(), np.errstate(over="warn", invalid="warn", divide="warn"):
        warnings.simplefilter("error")
        values = tent_curve(x, a=a, b=tent_exponent(rate))
    b = tent_exponent(rate)
    expected = [(v / a) ** b if v < a else ((1 - v) / (1 - a)) ** b for v in x.tolist()]  # only the branch taken
    assert values.tolist() == pytest.approx(expected, rel=1e-12, abs=1e-300)
    assert values.max() > 0.5 and np.isfinite(values).all()
