"""The generation worker's re-ask hook (used by instruction construction): refused answers are asked again in
the same actor with the re-ask's own request, at most `budget` times; the row keeps its own id and seed, the
last answer's result, and every answer with its verdict."""

from __future__ import annotations

import dataclasses

import pyarrow as pa
import pytest
from instr_scripted import ScriptedEngine

import compeffdist.engines as engines
from compeffdist.config import SamplingConfig
from compeffdist.generation.requests import REQUEST_SCHEMA, GenerationRequest, GenerationResult
from compeffdist.generation.worker import ANSWERS_FIELD, GenerationWorker, Reasks

pytestmark = pytest.mark.unit


def answer(request: GenerationRequest) -> GenerationResult:
    """'a' is good at once, 'b' on its second re-ask, 'c' never."""
    good = {"a": "a", "b": "b#2"}.get(request.request_id.split("#")[0]) == request.request_id
    return GenerationResult(request.request_id, "good" if good else "bad", 4, 2, "stop")


def check(result: GenerationResult) -> tuple[bool, str]:
    return (True, "fine") if result.text == "good" else (False, "not good")


def again(request: GenerationRequest, k: int) -> GenerationRequest:
    sampling = request.sampling.model_copy(update={"seed": 100 + k})
    return dataclasses.replace(request, request_id=f"{request.request_id}#{k}", sampling=sampling)


def test_refused_answers_are_reasked_in_the_same_worker_within_the_budget(monkeypatch):
    engine = ScriptedEngine(answer)
    monkeypatch.setattr(engines, "create_engine", lambda *args, **kwargs: engine)
    worker = GenerationWorker({"name": "x"}, {}, seed=0, reasks=Reasks(check, again, budget=2))
    sampling = SamplingConfig(temperature=1.0, seed=7)
    rows = [GenerationRequest(i, prompt="p", sampling=sampling).to_row() for i in ("a", "b", "c")]
    out = worker(pa.Table.from_pylist(rows, schema=REQUEST_SCHEMA))

    assert out.schema.field("answers") == ANSWERS_FIELD
    assert [[r.request_id for r in call] for call in engine.calls] == [["a", "b", "c"], ["b#1", "c#1"], ["b#2", "c#2"]]
    by_id = {row["request_id"]: row for row in out.to_pylist()}
    assert sorted(by_id) == ["a", "b", "c"] and all(row["seed"] == 7 for row in by_id.values())  # the rows' own
    assert [(a["request_id"], a["seed"], a["usable"], a["status"]) for a in by_id["b"]["answers"]] == [
        ("b", 7, False, "not good"),
        ("b#1", 101, False, "not good"),
        ("b#2", 102, True, "fine"),
    ]
    assert by_id["b"]["response"] == "good" and by_id["c"]["response"] == "bad"  # the last answer's result
    assert len(by_id["a"]["answers"]) == 1 and len(by_id["c"]["answers"]) == 3  # 1 ask + at most 2 re-asks
    assert all(a["prompt_tokens"] == 4 and a["attempts"] == 1 for a in by_id["c"]["answers"])

    engine.calls.clear()
    no_budget = GenerationWorker({"name": "x"}, {}, seed=0, reasks=Reasks(check, again, budget=0))
    assert len(no_budget(pa.Table.from_pylist(rows, schema=REQUEST_SCHEMA)).column("answers")[2]) == 1
    assert len(engine.calls) == 1
