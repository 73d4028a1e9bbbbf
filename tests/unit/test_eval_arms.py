"""Arms over training seeds: seed-averaged figures and which arm differences are significant."""

from __future__ import annotations

import numpy as np
import pytest

from compeffdist.evaluation.arms import combine_seeds, differences, seed_spread
from compeffdist.evaluation.bootstrap import mean_replicates
from compeffdist.evaluation.comparison import Measure

pytestmark = pytest.mark.unit


def _measure(values: np.ndarray) -> Measure:
    return Measure(float(values.mean()), mean_replicates(values, "records", 1000), len(values))


def test_a_clear_gap_between_arms_is_significant_and_a_tie_is_not():
    rng = np.random.default_rng(0)
    base = rng.normal(3.0, 1.0, size=80)  # per-record NLL of one student; the same records for every model
    measures = {}
    for seed in range(3):
        noise = rng.normal(0, 0.02, size=80)
        measures[f"good|{seed}"] = _measure(base - 0.5 + noise)
        measures[f"same|{seed}"] = _measure(base + noise)
        measures[f"also-same|{seed}"] = _measure(base + rng.normal(0, 0.02, size=80))
    arms = combine_seeds(measures, {arm: [f"{arm}|{s}" for s in range(3)] for arm in ("good", "same", "also-same")})
    assert arms["good"].estimate == pytest.approx(arms["same"].estimate - 0.5, abs=0.02)
    by_pair = {(d.first, d.second): d for d in differences(arms, 0.95)}
    assert by_pair[("good", "same")].significant and by_pair[("good", "same")].interval.high < 0
    assert not by_pair[("same", "also-same")].significant
    assert seed_spread(measures, ["good|0", "good|1", "good|2"]) < 0.05


def test_seed_disagreement_widens_the_arm_interval():
    values = np.random.default_rng(1).normal(3.0, 1.0, size=60)
    steady = {f"s|{i}": _measure(values) for i in range(3)}
    shaky = {f"s|{i}": _measure(values + shift) for i, shift in enumerate((-0.4, 0.0, 0.4))}
    names = {"s": ["s|0", "s|1", "s|2"]}
    width = lambda m: m.interval(0.95).high - m.interval(0.95).low  # noqa: E731
    assert width(combine_seeds(shaky, names)["s"]) > width(combine_seeds(steady, names)["s"])
