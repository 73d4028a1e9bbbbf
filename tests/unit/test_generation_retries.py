"""Per-record retries in the generation worker: bounded, counted, and never retrying hopeless prompts."""

from __future__ import annotations

import pyarrow as pa
import pytest

import compeffdist.engines as engines
from compeffdist.engines.base import Engine
from compeffdist.generation.requests import ErrorKind, GenerationRequest, GenerationResult, prompt_too_long
from compeffdist.generation.worker import GenerationWorker

pytestmark = pytest.mark.unit


class FlakyEngine(Engine):
    """Fails request 'a' once, always returns empty text for 'b', and 'c' never fits the context."""

    model_name = "flaky"
    tokenizer = None

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        out = []
        for r in requests:
            n = self.calls[r.request_id] = self.calls.get(r.request_id, 0) + 1
            if r.request_id == "a" and n == 1:
                # The message mentions a limit, but only the kind decides: an engine error is retried.
                out.append(GenerationResult.failure("a", ErrorKind.ENGINE, "RuntimeError: memory limit is reached"))
            elif r.request_id == "b":
                out.append(GenerationResult("b", "  ", 3, 1, "stop"))
            elif r.request_id == "c":
                out.append(prompt_too_long("c", tokens=900, max_model_len=1000, max_tokens=500))
            else:
                out.append(GenerationResult(r.request_id, f"ok {r.request_id}", 3, 2, "stop"))
        return out

    def next_token_logprobs(self, prompts, token_ids):
        raise NotImplementedError


def test_worker_retries_transient_failures_only(monkeypatch):
    engine = FlakyEngine()
    monkeypatch.setattr(engines, "create_engine", lambda *a, **k: engine)
    worker = GenerationWorker({"name": "x"}, {"resources": {"max_retries": 2}}, seed=0)
    rows = [GenerationRequest(request_id=i, prompt="p").to_row() for i in ("a", "b", "c", "d")]
    out = {r["request_id"]: r for r in worker(pa.Table.from_pylist(rows)).to_pylist()}
    assert out["a"]["error"] is None and out["a"]["response"] == "ok a" and out["a"]["attempts"] == 2
    assert out["b"]["error"] == "empty output" and out["b"]["attempts"] == 3  # 1 try + 2 bounded retries
    assert "limit is 500" in out["c"]["error"] and out["c"]["attempts"] == 1  # a prompt too long is not retried
    assert out["c"]["error_kind"] == "prompt_too_long" and out["b"]["error_kind"] == "empty_output"
    assert out["d"]["attempts"] == 1 and out["d"]["model"] == "flaky"
