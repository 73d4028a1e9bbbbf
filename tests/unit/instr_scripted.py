"""Unit-test stand-ins for the Ray side of instruction construction: the real GenerationWorker (typed retries,
answer checks and re-asks) runs in this process on a scripted engine instead of on a Ray actor pool."""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

import compeffdist.engines as engines
import compeffdist.generation.run as generation_run
from compeffdist.engines.base import Engine
from compeffdist.generation.requests import GenerationRequest, GenerationResult
from compeffdist.rowmap import MapStats


class ScriptedEngine(Engine):
    """Answers each request with `answer(request)`; records every generate call's requests."""

    tokenizer = None

    def __init__(self, answer: Callable[[GenerationRequest], GenerationResult], model_name: str = "scripted") -> None:
        self.answer = answer
        self.model_name = model_name
        self.calls: list[list[GenerationRequest]] = []

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        self.calls.append(list(requests))
        return [self.answer(request) for request in requests]

    def next_token_logprobs(self, prompts, token_ids):
        raise NotImplementedError


class InProcessMaps:
    """Stands in for rowmap.map_resumable under generate_table: the worker runs here, a batch at a time.

    Rows whose id is in `lose` never reach the worker nor come back (a map that lost them). `maps`
    counts the maps, i.e. the actor pools (and model loads) a real run would start.
    """

    def __init__(self, lose: tuple[str, ...] = ()) -> None:
        self.lose = lose
        self.maps = 0

    def __call__(self, ctx, rows, worker_cls, worker_kwargs, pool, id_column, desc):
        self.maps += 1
        rows = rows.filter(pc.invert(pc.is_in(rows.column(id_column), pa.array(self.lose, pa.string()))))
        worker = worker_cls(**worker_kwargs)
        batches = [worker(rows.slice(i, pool.batch_size)) for i in range(0, rows.num_rows, pool.batch_size)]
        return pa.concat_tables(batches) if batches else rows.slice(0, 0), MapStats(rows=rows.num_rows)


def generate_in_process(monkeypatch, engine: Engine, lose: tuple[str, ...] = ()) -> InProcessMaps:
    """Make generate_table run its worker in this process on `engine`; returns the map counter."""
    maps = InProcessMaps(lose)
    monkeypatch.setattr(engines, "create_engine", lambda *args, **kwargs: engine)
    monkeypatch.setattr(generation_run, "map_resumable", maps)
    return maps
