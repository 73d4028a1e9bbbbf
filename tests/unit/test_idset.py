"""The compact id set used to de-duplicate while streaming."""

from __future__ import annotations

import pytest

from compeffdist.idset import IdSet

pytestmark = pytest.mark.unit


def test_first_seen_marks_new_ids_across_and_within_batches():
    ids = IdSet()
    assert ids.first_seen(["a", "b", "a"]).tolist() == [True, True, False]  # the first of a duplicate pair only
    assert ids.first_seen(["c", "b", "d", "c"]).tolist() == [True, False, True, False]
    assert len(ids) == 4 and "d" in ids and "e" not in ids
    assert ids.first_seen([]).tolist() == []


def test_many_ids_stay_exact():
    ids = IdSet()
    batches = [[f"r{i}" for i in range(start, start + 1000)] for start in range(0, 20_000, 1000)]
    assert all(ids.first_seen(batch).all() for batch in batches)
    assert not ids.first_seen([f"r{i}" for i in range(0, 20_000, 7)]).any()
    assert len(ids) == 20_000
