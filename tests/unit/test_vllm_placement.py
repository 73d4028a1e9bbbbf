"""Tensor and pipeline parallel sizes from config reach ray.data.llm's vLLM stage with the right placement."""

from __future__ import annotations

import os

import pytest

from compeffdist.config import EngineConfig, ModelSpec, ResourceConfig
from compeffdist.generation.vllm_pipeline import processor_config

pytestmark = pytest.mark.unit


def test_a_70b_teacher_replica_spans_tensor_x_pipeline_gpus():
    engine = EngineConfig(
        backend="vllm",
        max_model_len=4096,
        resources={
            "tensor_parallel_size": 4, "pipeline_parallel_size": 2, "num_gpus_per_actor": 8, "num_cpus_per_actor": 16,
            "min_actors": 0, "max_actors": 3, "batch_size": 64, "max_concurrent_batches": 6,
            "vllm_engine_kwargs": {"enable_prefix_caching": True, "gpu_memory_utilization": 0.85},
        },
    )  # fmt: skip
    config = processor_config(ModelSpec(name="meta-llama/Llama-3.1-70B-Instruct"), engine, 7, "meta-llama/x", True)
    kwargs = config.engine_kwargs
    assert (kwargs["tensor_parallel_size"], kwargs["pipeline_parallel_size"]) == (4, 2)
    assert kwargs["dtype"] == "bfloat16" and kwargs["max_model_len"] == 4096 and kwargs["seed"] == 7
    assert kwargs["enable_prefix_caching"] and kwargs["gpu_memory_utilization"] == 0.85
    assert "max_num_seqs" not in kwargs and "enforce_eager" not in kwargs  # GPU defaults left to vLLM
    placement = config.placement_group_config
    # Ray's vLLM stage repeats this bundle tensor x pipeline parallel times (8 bundles, one GPU per engine worker).
    assert placement["strategy"] == "PACK" and placement["bundle_per_worker"] == {"GPU": 1, "CPU": 2.0}
    assert config.concurrency == (1, 3) and config.max_concurrent_batches == 6 and config.batch_size == 64
    assert config.should_continue_on_error  # a bad row is a failure row, not a failed job


def test_on_cpu_the_replica_holds_the_configured_cpus_and_no_gpu():
    engine = EngineConfig(backend="vllm", resources={"num_cpus_per_actor": 2, "batch_size": 16})
    config = processor_config(ModelSpec(name="x"), engine, 0, "/models/x", False)
    assert config.placement_group_config["bundle_per_worker"] == {"CPU": 2.0, "GPU": 0.0}
    assert config.engine_kwargs["dtype"] == "float32" and config.engine_kwargs["max_num_seqs"] == 16
    assert config.engine_kwargs["enforce_eager"]


def test_a_rows_finish_time_comes_from_the_engines_stats_not_from_when_it_reached_the_writer():
    from compeffdist.generation.vllm_pipeline import engine_finish_time

    # Queued at monotonic 500.0 (wall clock 1000.0), last token 2.5 s later.
    row = {"metrics": {"arrival_time": 1000.0, "queued_ts": 500.0, "last_token_ts": 502.5}}
    assert engine_finish_time(row) == 1002.5
    assert engine_finish_time({"metrics": None}) is None and engine_finish_time({}) is None


def test_on_cpu_the_engine_workers_bind_to_the_configured_threads_cores(monkeypatch):
    from compeffdist.engines.vllm_engine import cpu_binding_env

    monkeypatch.delenv("VLLM_CPU_OMP_THREADS_BIND", raising=False)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {5, 0, 3, 7, 1})
    engine = EngineConfig(backend="vllm", resources={"num_cpus_per_actor": 2, "torch_threads": 2})
    config = processor_config(ModelSpec(name="x"), engine, 0, "/models/x", False)
    # Both cores go to the one worker (vLLM's default would keep one free for its scheduler process).
    assert config.runtime_env == {"env_vars": {"VLLM_CPU_OMP_THREADS_BIND": "0,1"}}
    # Tensor x pipeline parallel workers on CPU each get their own share, in vLLM's "|"-separated form.
    split = ResourceConfig(torch_threads=4, tensor_parallel_size=2)
    assert cpu_binding_env(split) == {"VLLM_CPU_OMP_THREADS_BIND": "0,1|3,5"}
    # Fewer cores than workers, no thread count, or a binding the user set: vLLM decides.
    assert cpu_binding_env(ResourceConfig(torch_threads=1, tensor_parallel_size=2)) == {}
    assert cpu_binding_env(ResourceConfig()) == {}
    monkeypatch.setenv("VLLM_CPU_OMP_THREADS_BIND", "2-3")
    assert cpu_binding_env(ResourceConfig(torch_threads=2)) == {}


def test_the_binding_is_set_while_the_engine_starts_and_restored_after(monkeypatch):
    from compeffdist.engines.vllm_engine import scoped_environ

    monkeypatch.delenv("VLLM_CPU_OMP_THREADS_BIND", raising=False)
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "4")
    with scoped_environ({"VLLM_CPU_OMP_THREADS_BIND": "0,1", "VLLM_CPU_KVCACHE_SPACE": "8"}):
        assert os.environ["VLLM_CPU_OMP_THREADS_BIND"] == "0,1" and os.environ["VLLM_CPU_KVCACHE_SPACE"] == "8"
        os.environ["SET_BY_THE_ENGINE"] = "kept"  # what the engine sets for itself while it starts stays
    # A Ray worker process runs many tasks: the next engine in it computes its own binding.
    assert "VLLM_CPU_OMP_THREADS_BIND" not in os.environ and os.environ["VLLM_CPU_KVCACHE_SPACE"] == "4"
    assert os.environ.pop("SET_BY_THE_ENGINE") == "kept"
    with pytest.raises(RuntimeError), scoped_environ({"VLLM_CPU_OMP_THREADS_BIND": "0"}):
        raise RuntimeError("engine failed to start")
    assert "VLLM_CPU_OMP_THREADS_BIND" not in os.environ


def test_on_gpu_vllm_places_its_own_threads():
    engine = EngineConfig(backend="vllm", resources={"num_gpus_per_actor": 1, "torch_threads": 4})
    assert processor_config(ModelSpec(name="x"), engine, 0, "x", True).runtime_env is None
