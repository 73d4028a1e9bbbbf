"""One helper for every teacher call of instruction construction: generate on Ray, parse, retry, reject.

Requests carry stable ids built from the things they are about (text_id, cluster_id, task index,
demo index); answers are joined back by those ids only. Raw responses, including those of retries,
are kept in `files/responses_<step>.parquet`; every answer that stays unusable is quarantined with
ctx.reject and the reason. Re-asking only makes sense when sampling, so retries need temperature > 0,
and each attempt gets its own seed (derived from the run seed and the attempt's request id): with one
seed for every request, vLLM would answer a re-ask with the very same tokens.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pyarrow as pa

from compeffdist.config import SamplingConfig
from compeffdist.generation.requests import GenerationRequest
from compeffdist.stage import StageContext

RETRY_MARK = "~retry"


@dataclass
class TeacherCall:
    """One question to the teacher: a stable id, the user turn, and the JSON schema of the wanted answer."""

    request_id: str
    prompt: str
    schema: dict[str, Any] | None = None


@dataclass
class Answer:
    """The teacher's usable answer to one call: the parsed value of the attempt that parsed."""

    request_id: str
    value: Any
    method: str


@dataclass
class TeacherStats:
    """What one ask_teacher step did; `counts(prefix)` gives its stage counts."""

    requests: int = 0
    parsed: int = 0
    rejected: int = 0
    engine_errors: int = 0
    parse_retries: int = 0
    recovered_by_retry: int = 0
    items_dropped: int = 0  # items of usable answers that failed validation or the parser's filters
    usage: dict[str, dict[str, int]] = field(default_factory=dict)

    def counts(self, prefix: str) -> dict[str, int]:
        return {
            f"{prefix}_requests": self.requests,
            f"{prefix}_parsed": self.parsed,
            f"{prefix}_rejected": self.rejected,
            f"{prefix}_engine_errors": self.engine_errors,
            f"{prefix}_parse_retries": self.parse_retries,
            f"{prefix}_recovered_by_retry": self.recovered_by_retry,
            f"{prefix}_items_dropped": self.items_dropped,
        }


class ParseResult(NamedTuple):
    """A parser's verdict: `value` (None when unusable), how it was found or why not, items it dropped."""

    value: Any
    how: str
    dropped: int = 0


Parser = Callable[[str], ParseResult]


def request_seed(base_seed: int, request_id: str) -> int:
    """A sampling seed for one request: a hash of the base seed and the request id (31 bits, for every backend).

    Stable across runs and batch layouts; different for every request, re-asks included (their ids differ).
    """
    digest = hashlib.sha256(f"{base_seed}|{request_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def ask_teacher(
    ctx: StageContext, step: str, calls: list[TeacherCall], sampling: SamplingConfig, parse: Parser
) -> tuple[dict[str, Answer], TeacherStats]:
    """Ask every call, parse each answer, re-ask unparseable ones (bounded), reject what stays unusable.

    Returns usable answers by request_id and the step's statistics (token usage included).
    """
    import pyarrow.parquet as pq

    from compeffdist.generation.run import generate_table
    from compeffdist.generation.usage import add_usage

    cfg = ctx.config
    structured = cfg.instructions.structured_output
    retries = cfg.instructions.parse_retries if sampling.temperature > 0 else 0
    base_seed = sampling.seed if sampling.seed is not None else cfg.run.seed
    stats = TeacherStats(requests=len(calls))
    answers: dict[str, Answer] = {}
    failures: dict[str, tuple[str, str]] = {}  # request_id -> (reason, raw response)
    pending = sorted(calls, key=lambda c: c.request_id)
    tables: list[pa.Table] = []
    for attempt in range(retries + 1):
        if not pending:
            break
        suffix = "" if attempt == 0 else f"{RETRY_MARK}{attempt}"
        requests = [
            GenerationRequest(
                request_id=call.request_id + suffix,
                messages=[{"role": "user", "content": call.prompt}],
                sampling=sampling.model_copy(update={"seed": request_seed(base_seed, call.request_id + suffix)}),
                json_schema=call.schema if structured else None,
            )
            for call in pending
        ]
        desc = step if attempt == 0 else f"{step} (retry {attempt})"
        table = generate_table(
            _step_context(ctx, step, attempt), requests, cfg.models.teacher, cfg.engines.teacher, desc
        )
        by_id = {row["request_id"]: row for row in table.to_pylist()}
        statuses = []
        still_failing = []
        for call in pending:
            row = by_id.get(call.request_id + suffix)
            value, how, dropped = _judge(row, parse)
            statuses.append(how if value is not None else f"rejected: {how}")
            if value is None:
                if row is not None and row.get("error"):
                    stats.engine_errors += 1
                failures[call.request_id] = (how, (row or {}).get("response") or "")
                still_failing.append(call)
                continue
            answers[call.request_id] = Answer(call.request_id, value, how)
            stats.items_dropped += dropped
            failures.pop(call.request_id, None)
            if attempt:
                stats.recovered_by_retry += 1
        tables.append(_with_status(table, [c.request_id + suffix for c in pending], statuses))
        add_usage(stats.usage, table)
        if attempt:
            stats.parse_retries += len(pending)
        pending = still_failing
    for request_id in sorted(failures):
        reason, raw = failures[request_id]
        ctx.reject("teacher", request_id, "response", f"{step}: {reason}", raw)
    stats.parsed, stats.rejected = len(answers), len(failures)
    if tables:
        pq.write_table(pa.concat_tables(tables, promote_options="default"), ctx.files_dir / f"responses_{step}.parquet")
    ctx.log(f"{step}: {stats.parsed}/{stats.requests} answers usable, {stats.rejected} rejected")
    return answers, stats


def _step_context(ctx: StageContext, step: str, attempt: int) -> StageContext:
    """The stage context with its own shard folder for one step and attempt.

    A stage makes several generate_table calls; separate folders keep each call's resume
    bookkeeping (ids already in shards) to its own requests. Rejects still go to the stage.
    """
    sub = copy.copy(ctx)
    sub.work = ctx.work.join("teacher", f"{step}-{attempt}")
    return sub


def _judge(row: dict[str, Any] | None, parse: Parser) -> ParseResult:
    if row is None:
        return ParseResult(None, "no result row")
    if row.get("error"):
        return ParseResult(None, f"engine error: {row['error']}")
    response = row.get("response") or ""
    if not response.strip():
        return ParseResult(None, "empty response")
    result = parse(response)
    if result.value is None and row.get("finish_reason") == "length":
        return result._replace(how=result.how + " (answer cut at max_tokens)")
    return result


def _with_status(table: pa.Table, ids: list[str], statuses: list[str]) -> pa.Table:
    """The generation rows plus a parse_status column, joined by request_id."""
    status_by_id = dict(zip(ids, statuses, strict=True))
    column = [status_by_id.get(rid, "no result row") for rid in table.column("request_id").to_pylist()]
    return table.append_column("parse_status", pa.array(column, pa.string()))
