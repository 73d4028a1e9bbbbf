"""Progress lines for long stages: rows/s, tokens/s and ETA, printed at most every few seconds."""

from __future__ import annotations

import time
from typing import Any

from compeffdist.stage import StageContext

PRINT_EVERY_S = 5.0


class Progress:
    """Accumulates per-batch summaries (rows, output_tokens, errors, seconds) and logs rates."""

    def __init__(self, ctx: StageContext, desc: str, total: int) -> None:
        self.ctx = ctx
        self.desc = desc
        self.total = total
        self.rows = 0
        self.tokens = 0
        self.errors = 0
        self.actor_seconds = 0.0
        self.started = time.time()
        # (finished_at, output tokens) per batch, stamped where the batch finished: the driver receives
        # summaries in bunches, so its own clock says little about when batches completed.
        self.batches: list[tuple[float, int]] = []
        self._last_print = 0.0
        self._printed: tuple[int, int, int] | None = None

    def update(self, summary: dict[str, Any]) -> None:
        self.batches.append((float(summary["finished_at"]), int(summary.get("output_tokens", 0))))
        self.rows += int(summary.get("rows", 0))
        self.tokens += int(summary.get("output_tokens", 0))
        self.errors += int(summary.get("errors", 0))
        self.actor_seconds += float(summary.get("seconds", 0.0))
        if time.time() - self._last_print >= PRINT_EVERY_S:
            self._print()

    def _print(self) -> None:
        self._last_print = time.time()
        self._printed = (self.rows, self.tokens, self.errors)
        elapsed = max(self._last_print - self.started, 1e-9)
        rate = self.rows / elapsed
        eta = (self.total - self.rows) / rate if rate > 0 else float("inf")
        eta_text = f"{eta:.0f}s" if eta != float("inf") else "?"
        self.ctx.log(
            f"{self.desc}: {self.rows}/{self.total} rows ({100 * self.rows / max(self.total, 1):.0f}%), "
            f"{rate:.2f} rows/s, {self.tokens / elapsed:.1f} output tok/s, {self.errors} errors, ETA {eta_text}"
        )

    @property
    def steady_tokens_per_second(self) -> float | None:
        """Output tokens/s between the first and last finished batch: throughput without start-up costs."""
        ordered = sorted(self.batches)
        if len(ordered) < 2 or ordered[-1][0] <= ordered[0][0]:
            return None
        return sum(tokens for _, tokens in ordered[1:]) / (ordered[-1][0] - ordered[0][0])

    def finish(self) -> None:
        """The final line, unless the last update already printed these very numbers."""
        if self._printed != (self.rows, self.tokens, self.errors):
            self._print()
