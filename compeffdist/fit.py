"""Will a model's weights fit the GPUs an engine gives it? Estimated before anything runs.

Weight memory = parameters x bytes per parameter (bf16 on GPUs unless the model spec says
otherwise). Parameters come from the model's own config.json when it is a local folder (an exact
count on the meta device, no weights loaded), else from `parameters_b` in the model spec, else
from its name ("...-70B-Instruct", "gemma-3-27b-it"). The engine's budget is GPUs x the configured
GPU's memory x the memory fraction vLLM may use. Plain values only: the config calls this module,
never the other way round.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

BYTES_PER_PARAMETER = {"float32": 4, "bfloat16": 2, "float16": 2}
# "Llama-3.1-70B-Instruct", "Qwen3-4B", "gemma-3-27b-it": a number right before a B that ends a name part.
SIZE_IN_NAME = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)[bB](?![a-zA-Z0-9])")
GPU_MEMORY_IN_NAME = re.compile(r"(\d+(?:\.\d+)?)\s*G[Bi]?B?\b", re.IGNORECASE)


def parameters_from_name(name: str) -> float | None:
    """Billions of parameters a model name states, or None ("Qwen3-4B" -> 4.0)."""
    found = SIZE_IN_NAME.findall(Path(name).name)
    return float(found[-1]) if found else None


def parameters_from_folder(folder: Path, derive_layers: int | None = None) -> float | None:
    """Billions of parameters of a local model folder, counted from its config on the meta device."""
    if not (folder / "config.json").is_file():
        return None
    try:
        from accelerate import init_empty_weights
        from transformers import AutoConfig, AutoModelForCausalLM

        config = AutoConfig.from_pretrained(folder)
        if derive_layers is not None and hasattr(config, "num_hidden_layers"):
            config.num_hidden_layers = min(derive_layers, config.num_hidden_layers)
        with init_empty_weights():
            model = AutoModelForCausalLM.from_config(config)
        model.tie_weights()  # tied input/output embeddings are one tensor: count it once
        return sum(p.numel() for p in model.parameters()) / 1e9
    except (OSError, ValueError, KeyError, ImportError):
        return None


def gpu_memory_gb(gpu_type: str) -> float | None:
    """GB of one GPU from its type name ("H100-80GB" -> 80.0), or None when the name does not say."""
    found = GPU_MEMORY_IN_NAME.findall(gpu_type)
    return float(found[-1]) if found else None


@dataclass(frozen=True)
class Fit:
    """A model's estimated weight memory against an engine's GPU budget."""

    weights_gb: float
    budget_gb: float
    source: str  # where the parameter count came from

    @property
    def fits(self) -> bool:
        return self.weights_gb < self.budget_gb


def estimate_fit(
    parameters_b: float, dtype: str, gpus: float, gpu_memory: float, utilization: float, source: str
) -> Fit:
    """Weights of `parameters_b` billion parameters in `dtype` against `gpus` x `gpu_memory` GB x `utilization`."""
    weights = parameters_b * BYTES_PER_PARAMETER.get(dtype, 2)
    return Fit(round(weights, 1), round(gpus * gpu_memory * utilization, 1), source)
