"""Engine backend on plain transformers: CPU default, tests, and anywhere vLLM is not installed."""

from __future__ import annotations

import itertools
from typing import Any

from compeffdist.config import EngineConfig, ModelSpec
from compeffdist.engines.base import Engine, GenerationRequest, GenerationResult
from compeffdist.engines.prompts import encode_prompt, render_prompt


class TransformersEngine(Engine):
    """Batched greedy/sampled generation with left padding; no guided decoding (outputs are validated later)."""

    def __init__(self, model: ModelSpec, engine: EngineConfig) -> None:
        import torch

        from compeffdist.models.registry import load_causal_lm, load_tokenizer

        if engine.torch_threads:
            torch.set_num_threads(engine.torch_threads)
        self.device = "cuda" if engine.num_gpus_per_actor > 0 and torch.cuda.is_available() else "cpu"
        self.spec = model
        self.config = engine
        self.model_name = model.name if model.derive_layers is None else f"{model.name}[:{model.derive_layers}]"
        self.tokenizer = load_tokenizer(model, padding_side="left")
        self.model = load_causal_lm(model, device=self.device)

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        results: dict[str, GenerationResult] = {}

        def group_key(r: GenerationRequest) -> tuple[Any, ...]:
            return (r.sampling.temperature, r.sampling.top_p, r.sampling.max_tokens, tuple(r.stop or ()))

        for key, group in itertools.groupby(sorted(requests, key=group_key), key=group_key):
            batch = list(group)
            for start in range(0, len(batch), self.config.batch_size):
                chunk = batch[start : start + self.config.batch_size]
                try:
                    for result in self._generate_batch(chunk, *key):
                        results[result.request_id] = result
                except Exception as exc:  # one bad batch is recorded per request, never raised
                    for request in chunk:
                        results[request.request_id] = _error(request, f"{type(exc).__name__}: {exc}")
        return [results[r.request_id] for r in requests]

    def _generate_batch(
        self, batch: list[GenerationRequest], temperature: float, top_p: float, max_tokens: int, stop: tuple[str, ...]
    ) -> list[GenerationResult]:
        import torch

        texts = [render_prompt(self.tokenizer, r, self.spec.chat_template_kwargs) for r in batch]
        encoded = [encode_prompt(self.tokenizer, t) for t in texts]
        budget = self.config.max_model_len - max_tokens
        out: list[GenerationResult] = []
        keep = []
        for request, ids in zip(batch, encoded, strict=True):
            if len(ids) > budget:
                out.append(
                    _error(request, f"prompt has {len(ids)} tokens; limit is {budget} (max_model_len - max_tokens)")
                )
            else:
                keep.append((request, ids))
        if not keep:
            return out
        inputs = self.tokenizer.pad({"input_ids": [ids for _, ids in keep]}, return_tensors="pt").to(self.device)
        seed = keep[0][0].sampling.seed
        if seed is not None:
            torch.manual_seed(seed)
        kwargs: dict[str, Any] = {"max_new_tokens": max_tokens, "pad_token_id": self.tokenizer.pad_token_id}
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature, top_p=top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if stop:
            kwargs.update(stop_strings=list(stop), tokenizer=self.tokenizer)
        with torch.inference_mode():
            generated = self.model.generate(**inputs, **kwargs)
        new_tokens = generated[:, inputs["input_ids"].shape[1] :]
        eos_ids = _eos_ids(self.tokenizer, self.model)
        for (request, ids), row in zip(keep, new_tokens.tolist(), strict=True):
            length = next((i for i, tok in enumerate(row) if tok in eos_ids), len(row))
            text = self.tokenizer.decode(row[:length], skip_special_tokens=True)
            text, stopped = _cut_at_stop(text, stop)
            finish = "stop" if stopped or length < len(row) else "length"
            out.append(GenerationResult(request.request_id, text, len(ids), min(length + 1, len(row)), finish))
        return out

    def next_token_logprobs(self, prompts: list[str], token_ids: list[list[int]]) -> list[list[float]]:
        import torch

        scores: list[list[float]] = []
        for start in range(0, len(prompts), self.config.batch_size):
            chunk = prompts[start : start + self.config.batch_size]
            encoded = [encode_prompt(self.tokenizer, p) for p in chunk]
            inputs = self.tokenizer.pad({"input_ids": encoded}, return_tensors="pt").to(self.device)
            with torch.inference_mode():
                logits = self.model(**inputs).logits[:, -1, :].float()
            logprobs = torch.log_softmax(logits, dim=-1)
            for row, candidates in zip(logprobs, token_ids[start : start + len(chunk)], strict=True):
                scores.append(row[torch.tensor(candidates, device=row.device)].tolist())
        return scores


def _eos_ids(tokenizer: Any, model: Any) -> set[int]:
    ids = {tokenizer.eos_token_id, tokenizer.pad_token_id}
    configured = getattr(model.generation_config, "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(configured)
    return {i for i in ids if i is not None}


def _cut_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    positions = [text.find(s) for s in stop if s and s in text]
    if not positions:
        return text, False
    return text[: min(positions)], True


def _error(request: GenerationRequest, message: str) -> GenerationResult:
    return GenerationResult(request.request_id, "", 0, 0, "error", message)
