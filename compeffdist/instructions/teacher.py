"""One helper for every teacher call of instruction construction: generate on Ray, check, re-ask, reject.

A step is one `generate_table` call: one resumable map, one Ray actor pool, one model load, however
many re-asks. The generation actors judge each answer with the step's parser and ask refused ones
again in place (bounded by instructions.parse_retries). Re-asking only makes sense when sampling,
so re-asks need temperature > 0, and each attempt gets its own seed (derived from the base seed and
the attempt's request id): with one seed for every attempt, vLLM would answer a re-ask with the
very same tokens.

Answers are joined back by request id only. Every answer, re-asks included, is kept raw with its
verdict in `files/responses_<step>.parquet`; every request that stays unusable is quarantined with
ctx.reject and the reason. The actor only decides usable or not; the driver rebuilds the typed
items of each accepted answer with the same pure parser (the steps' item types differ, so they do
not travel in one generic Arrow column).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from compeffdist.chat import user_turn
from compeffdist.config import SamplingConfig
from compeffdist.generation.requests import GenerationRequest, GenerationResult
from compeffdist.generation.worker import ANSWERS_FIELD, Reasks
from compeffdist.instructions import ids
from compeffdist.instructions.parsing import Parsed
from compeffdist.instructions.seeds import request_seed
from compeffdist.stage import StageContext, StageOutput

# Config sections that decide every teacher answer (part of each teacher stage's hash).
TEACHER_SECTIONS = (
    "models.teacher",
    "engines.teacher",
    "instructions.structured_output",
    "instructions.parse_retries",
    "run.seed",
)
# ... and those of the generation steps after attribute enumeration (S4-S10).
GENERATION_SECTIONS = ("instructions.generation_sampling", "instructions.near_duplicate_threshold")


@dataclass
class TeacherCall:
    """One question to the teacher: a stable id, the user turn, and the JSON schema of the wanted answer."""

    request_id: str
    prompt: str
    schema: dict[str, Any] | None = None


@dataclass(frozen=True)
class AnswerParser:
    """A step's parser and the reason an answer gets when the parser finds nothing in it."""

    parse: Callable[[str], Parsed[Any]]
    why_not: str


@dataclass
class Answer:
    """The teacher's usable answer to one call: what the parser made of the attempt that parsed."""

    request_id: str
    parsed: Parsed[Any]

    @property
    def items(self) -> list[Any]:
        return self.parsed.items

    @property
    def method(self) -> str:
        return self.parsed.method


@dataclass
class TeacherStats:
    """What one ask_teacher step did; `counts(prefix)` gives its stage counts."""

    requests: int = 0
    parsed: int = 0
    rejected: int = 0
    engine_errors: int = 0  # answers (re-asks included) that are engine errors
    parse_retries: int = 0  # re-asks
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


def teacher_output(
    ctx: StageContext,
    rows: list[dict[str, Any]],
    schema: pa.Schema,
    counts: dict[str, int],
    usage: dict[str, dict[str, int]],
    sampling: SamplingConfig,
    **extra: Any,
) -> StageOutput:
    """A teacher stage's artifact: its rows, counts, the teacher's name and token usage, the sampling it used."""
    return StageOutput(
        table=pa.Table.from_pylist(rows, schema=schema),
        counts=counts,
        models={"teacher": ctx.config.models.teacher.name},
        token_usage=usage,
        extra={"sampling": sampling.model_dump(), **extra},
    )


def judge(result: GenerationResult, parser: AnswerParser) -> tuple[bool, str]:
    """Whether an answer is usable, and how it was read (the parser's route) or why not. Runs in the actors."""
    if result.error:
        return False, f"engine error: {result.error}"
    parsed = parser.parse(result.text)
    if parsed.ok:
        return True, parsed.method
    return False, parser.why_not + (" (answer cut at max_tokens)" if result.finish_reason == "length" else "")


def reask_request(request: GenerationRequest, k: int, base_seed: int) -> GenerationRequest:
    """The k-th re-ask of a request: its own id, and a seed derived from that id."""
    request_id = ids.reask(request.request_id, k)
    sampling = request.sampling.model_copy(update={"seed": request_seed(base_seed, request_id)})
    return dataclasses.replace(request, request_id=request_id, sampling=sampling)


def ask_teacher(
    ctx: StageContext, step: str, calls: list[TeacherCall], sampling: SamplingConfig, parser: AnswerParser
) -> tuple[dict[str, Answer], TeacherStats]:
    """Ask every call on one actor pool (re-asks included), reject what stays unusable.

    Returns usable answers by request_id and the step's statistics (token usage included).
    """
    import pyarrow.parquet as pq

    from compeffdist.generation.run import generate_table
    from compeffdist.generation.usage import add_usage

    cfg = ctx.config
    stats = TeacherStats(requests=len(calls))
    if not calls:
        return {}, stats
    structured = cfg.instructions.structured_output
    base_seed = sampling.seed if sampling.seed is not None else cfg.run.seed
    requests = [
        GenerationRequest(
            request_id=call.request_id,
            messages=user_turn(call.prompt),
            sampling=sampling.model_copy(update={"seed": request_seed(base_seed, call.request_id)}),
            json_schema=call.schema if structured else None,
        )
        for call in sorted(calls, key=lambda c: c.request_id)
    ]
    reasks = Reasks(
        check=partial(judge, parser=parser),
        again=partial(reask_request, base_seed=base_seed),
        budget=cfg.instructions.parse_retries if sampling.temperature > 0 else 0,
    )
    table = generate_table(ctx, requests, cfg.models.teacher, cfg.engines.teacher, step, reasks=reasks)
    if ANSWERS_FIELD.name not in table.column_names:  # nothing came back at all: no result columns either
        table = table.append_column(ANSWERS_FIELD, pa.nulls(table.num_rows, ANSWERS_FIELD.type))
    responses = answer_rows(table)
    pq.write_table(responses, ctx.files_dir / f"responses_{step}.parquet")

    stats.parse_retries = responses.num_rows - table.num_rows
    stats.engine_errors = responses.num_rows - responses.column("error").null_count
    add_usage(stats.usage, responses)
    answers_by_id = dict(zip(table.column("request_id").to_pylist(), table.column("answers").to_pylist(), strict=True))
    answers: dict[str, Answer] = {}
    for request in requests:
        tries = answers_by_id.get(request.request_id) or []
        last = tries[-1] if tries else None
        if last is None or not last["usable"]:
            reason = last["status"] if last else "no result row"
            ctx.reject("teacher", request.request_id, "response", f"{step}: {reason}", last["response"] if last else "")
            continue
        answers[request.request_id] = Answer(request.request_id, parser.parse(last["response"]))
        stats.items_dropped += answers[request.request_id].parsed.dropped
        stats.recovered_by_retry += len(tries) > 1
    stats.parsed, stats.rejected = len(answers), len(requests) - len(answers)
    ctx.log(f"{step}: {stats.parsed}/{stats.requests} answers usable, {stats.rejected} rejected")
    return answers, stats


def answer_rows(table: pa.Table) -> pa.Table:
    """One row per answer (re-asks included): its own request id and seed, the request it answers
    (messages, sampling, schema), its result, and `parse_status` (the parser's route, or "rejected: <why>")."""
    table = table.combine_chunks()  # list_parent_indices counts within a chunk
    answers = pa.Table.from_struct_array(pc.list_flatten(table.column("answers")))
    request = table.drop_columns([name for name in table.column_names if name in answers.column_names])
    request = request.drop_columns("answers").take(pc.list_parent_indices(table.column("answers")))
    rejected = pc.binary_join_element_wise("rejected: ", answers.column("status"), "")
    status = pc.if_else(answers.column("usable"), answers.column("status"), rejected)
    answers = answers.drop_columns(["usable", "status"])
    columns = [("request_id", answers.column("request_id")), ("seed", answers.column("seed"))]
    columns += [(name, request.column(name)) for name in request.column_names]
    columns += [(name, answers.column(name)) for name in answers.column_names if name not in ("request_id", "seed")]
    return pa.table(dict([*columns, ("parse_status", status)]))
