"""The generation actor of the own-actor path: one engine per actor, a batch at a time, typed retries."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from compeffdist.config import EngineConfig, ModelSpec
from compeffdist.generation.requests import RESULT_SCHEMA, GenerationRequest, GenerationResult


class GenerationWorker:
    """Loads an engine once per actor; generates a batch of request rows (REQUEST_SCHEMA plus any carried
    columns) and returns them with the result columns and `attempts`.

    A result whose error kind is retryable is asked again, at most `resources.max_retries` times; a
    prompt that does not fit is never retried. Whitespace-only answers count as EMPTY_OUTPUT failures.
    """

    def __init__(self, model: dict[str, Any], engine: dict[str, Any], seed: int, id_column: str = "request_id") -> None:
        from compeffdist.engines import create_engine

        self.engine_config = EngineConfig.model_validate(engine)
        self.engine = create_engine(ModelSpec.model_validate(model), self.engine_config, seed=seed)
        self.seed = seed
        self.id_column = id_column

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

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        # A row's own seed (e.g. one per teacher re-ask) wins; the run seed only fills rows that carry none.
        requests = [GenerationRequest.from_row(row, seed=self.seed, id_column=self.id_column) for row in rows]
        results, attempts = self.generate(requests)
        out = []
        for row, request in zip(rows, requests, strict=True):
            result = results[request.request_id]
            out.append({**row, **result.to_row(self.engine.model_name), "attempts": attempts[request.request_id]})
        return pa.Table.from_pylist(out, schema=_output_schema(batch.schema))


def _output_schema(input_schema: pa.Schema) -> pa.Schema:
    """The input columns (messages stay structured) followed by the result columns."""
    return pa.schema(list(input_schema) + list(RESULT_SCHEMA))
