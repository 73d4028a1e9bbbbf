"""The generation actor of the own-actor path: one engine per actor, a batch at a time, typed retries."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from compeffdist.config import EngineConfig, ModelSpec
from compeffdist.generation.requests import RESULT_SCHEMA, GenerationRequest, GenerationResult

# One answer of a request that may be asked again: its own id and seed, the result, and the check's verdict.
ANSWER_TYPE = pa.struct(
    [
        ("request_id", pa.string()),
        ("seed", pa.int64()),
        *[field for field in RESULT_SCHEMA if field.name != "model"],
        ("usable", pa.bool_()),
        ("status", pa.string()),
    ]
)
ANSWERS_FIELD = pa.field("answers", pa.list_(ANSWER_TYPE))


@dataclass(frozen=True)
class Reasks:
    """Ask again, in the same actor and engine, for answers that a check refuses.

    `check(result)` says whether an answer is usable and how it was read (or why not); a refused answer
    is asked again as `again(request, k)` (k = 1, 2, ...: a new id and seed), at most `budget` times.
    Both must be picklable (module-level functions, or functools.partial of them): they travel to the actor.
    """

    check: Callable[[GenerationResult], tuple[bool, str]]
    again: Callable[[GenerationRequest, int], GenerationRequest]
    budget: int


class GenerationWorker:
    """Loads an engine once per actor; generates a batch of request rows (REQUEST_SCHEMA plus any carried
    columns) and returns them with the result columns and `attempts`.

    A result whose error kind is retryable is asked again, at most `resources.max_retries` times; a
    prompt that does not fit is never retried. Whitespace-only answers count as EMPTY_OUTPUT failures.
    With `reasks`, answers its check refuses are asked again (see Reasks); the row then carries the
    last answer's result and an `answers` column with every answer (ANSWER_TYPE).
    """

    def __init__(
        self,
        model: dict[str, Any],
        engine: dict[str, Any],
        seed: int,
        id_column: str = "request_id",
        reasks: Reasks | None = None,
    ) -> None:
        from compeffdist.engines import create_engine

        self.engine_config = EngineConfig.model_validate(engine)
        self.engine = create_engine(ModelSpec.model_validate(model), self.engine_config, seed=seed)
        self.seed = seed
        self.id_column = id_column
        self.reasks = reasks

    def generate(self, requests: list[GenerationRequest]) -> tuple[dict[str, GenerationResult], dict[str, int]]:
        """Results and attempts per request id, retryable failures retried."""
        results = {r.request_id: r.checked() for r in self.engine.generate(requests)}
        attempts = dict.fromkeys(results, 1)
        for _ in range(self.engine_config.resources.max_retries):
            failed = [q for q in requests if results[q.request_id].retryable]
            if not failed:
                break
            for result in self.engine.generate(failed):
                results[result.request_id] = result.checked()
                attempts[result.request_id] += 1
        return results, attempts

    def answers(self, requests: list[GenerationRequest]) -> dict[str, list[dict[str, Any]]]:
        """Every answer (ANSWER_TYPE rows) per request id: the first, then re-asks while the check refuses."""
        assert self.reasks is not None
        first = {q.request_id: q for q in requests}
        log: dict[str, list[dict[str, Any]]] = {request_id: [] for request_id in first}
        asked = dict(first)  # original id -> the request asked in this round
        for k in range(self.reasks.budget + 1):
            results, attempts = self.generate(list(asked.values()))
            refused = []
            for original, request in asked.items():
                answer = results[request.request_id].to_row(self.engine.model_name)
                del answer["model"]  # one per batch: it stays a column of the row
                usable, status = self.reasks.check(results[request.request_id])
                answer.update(request_id=request.request_id, seed=request.sampling.seed, usable=usable, status=status)
                log[original].append({**answer, "attempts": attempts[request.request_id]})
                if not usable:
                    refused.append(original)
            if not refused or k == self.reasks.budget:
                break
            asked = {original: self.reasks.again(first[original], k + 1) for original in refused}
        return log

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        # A row's own seed (e.g. one per teacher re-ask) wins; the run seed only fills rows that carry none.
        requests = [GenerationRequest.from_row(row, seed=self.seed, id_column=self.id_column) for row in rows]
        model = self.engine.model_name
        pairs = list(zip(rows, requests, strict=True))
        if self.reasks is None:
            results, attempts = self.generate(requests)
            out = [
                {**row, **results[q.request_id].to_row(model), "attempts": attempts[q.request_id]} for row, q in pairs
            ]
            return pa.Table.from_pylist(out, schema=_output_schema(batch.schema))
        log = self.answers(requests)
        # The last answer's result columns; the row's own id and seed stay (not the re-ask's).
        out = [{**log[q.request_id][-1], **row, "model": model, "answers": log[q.request_id]} for row, q in pairs]
        return pa.Table.from_pylist(out, schema=_output_schema(batch.schema).append(ANSWERS_FIELD))


def _output_schema(input_schema: pa.Schema) -> pa.Schema:
    """The input columns (messages stay structured) followed by the result columns."""
    return pa.schema(list(input_schema) + list(RESULT_SCHEMA))
