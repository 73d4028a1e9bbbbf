"""Progress rates: steady-state throughput from the times batches finished, not when the driver saw them."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from compeffdist.progress import Progress


def _progress() -> Progress:
    lines: list[str] = []
    return Progress(SimpleNamespace(log=lines.append), "teacher", total=40)  # only .log is used


def test_steady_rate_excludes_the_first_batch_and_uses_finish_stamps():
    progress = _progress()
    # Summaries arrive in a bunch and out of order; the stamps say batches finished 2 s apart.
    for finished_at, tokens in [(104.0, 30), (100.0, 50), (102.0, 20)]:
        progress.update({"rows": 10, "output_tokens": tokens, "seconds": 2.0, "finished_at": finished_at})
    # The first batch (t=100, start-up included) is excluded: (20 + 30) tokens over 4 s.
    assert progress.steady_tokens_per_second == pytest.approx(12.5)
    assert progress.tokens == 100 and progress.rows == 30


def test_steady_rate_needs_two_batches():
    progress = _progress()
    progress.update({"rows": 10, "output_tokens": 5, "finished_at": 1.0})
    assert progress.steady_tokens_per_second is None


def test_one_line_per_update_and_no_repeated_final_line():
    lines: list[str] = []
    progress = Progress(SimpleNamespace(log=lines.append), "scorer", total=20)
    progress.update({"rows": 20, "output_tokens": 0, "finished_at": 1.0})  # the first update prints at once
    progress.finish()  # nothing new since: no second identical line
    assert len(lines) == 1 and "20/20 rows" in lines[0]
    progress.update({"rows": 0, "output_tokens": 0, "errors": 1, "finished_at": 2.0})  # within 5 s: not printed
    progress.finish()
    assert len(lines) == 2 and "1 errors" in lines[1]
