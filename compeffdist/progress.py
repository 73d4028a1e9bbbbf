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
        self.first_batch_at: float | None = None
        self.last_batch_at: float | None = None
        self.tokens_after_first = 0
        self._last_print = 0.0

    def update(self, summary: dict[str, Any]) -> None:
        now = time.time()
        if self.first_batch_at is None:
            self.first_batch_at = now
        else:
            self.tokens_after_first += int(summary.get("output_tokens", 0))
        self.last_batch_at = now
        self.rows += int(summary.get("rows", 0))
        self.tokens += int(summary.get("output_tokens", 0))
        self.errors += int(summary.get("errors", 0))
        self.actor_seconds += float(summary.get("seconds", 0.0))
        if time.time() - self._last_print >= PRINT_EVERY_S:
            self._print()

    def _print(self) -> None:
        self._last_print = time.time()
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
        if self.first_batch_at is None or self.last_batch_at is None or self.last_batch_at <= self.first_batch_at:
            return None
        return self.tokens_after_first / (self.last_batch_at - self.first_batch_at)

    def finish(self) -> None:
        self._print()
