"""Engine backend on plain transformers: CPU default, tests, and anywhere vLLM is not installed."""

from __future__ import annotations

import itertools
from typing import Any

from compeffdist.chat import encode_prompt
from compeffdist.config import EngineConfig, ModelSpec
from compeffdist.engines.base import Engine, model_label, prompt_text, use_torch_threads
from compeffdist.generation.requests import ErrorKind, GenerationRequest, GenerationResult, prompt_too_long


class TransformersEngine(Engine):
    """Batched greedy/sampled generation with left padding; no guided decoding (outputs are validated later)."""

    def __init__(self, model: ModelSpec, engine: EngineConfig) -> None:
        import torch

        from compeffdist.models.registry import load_causal_lm, load_tokenizer

        use_torch_threads(engine.resources)
        self.device = "cuda" if engine.resources.num_gpus_per_actor > 0 and torch.cuda.is_available() else "cpu"
        self.spec = model
        self.config = engine
        self.model_name = model_label(model)
        self.tokenizer = load_tokenizer(model, padding_side="left")
        self.model = load_causal_lm(model, device=self.device)

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        results: dict[str, GenerationResult] = {}

        def group_key(r: GenerationRequest) -> tuple[Any, ...]:
            return (r.sampling.temperature, r.sampling.top_p, r.sampling.max_tokens, tuple(r.stop or ()))

        for key, group in itertools.groupby(sorted(requests, key=group_key), key=group_key):
            batch = list(group)
            for start in range(0, len(batch), self.config.resources.batch_size):
                chunk = batch[start : start + self.config.resources.batch_size]
                try:
                    for result in self._generate_batch(chunk, *key):
                        results[result.request_id] = result
                except Exception as exc:  # one bad batch is recorded per request, never raised
                    for request in chunk:
                        results[request.request_id] = GenerationResult.failure(
                            request.request_id, ErrorKind.ENGINE, f"{type(exc).__name__}: {exc}"
                        )
        return [results[r.request_id] for r in requests]

    def _generate_batch(
        self, batch: list[GenerationRequest], temperature: float, top_p: float, max_tokens: int, stop: tuple[str, ...]
    ) -> list[GenerationResult]:
        import torch

        texts = [prompt_text(self.tokenizer, r, self.spec.chat_template_kwargs) for r in batch]
        encoded = [encode_prompt(self.tokenizer, t) for t in texts]
        budget = self.config.max_model_len - max_tokens
        out: list[GenerationResult] = []
        keep = []
        for request, ids in zip(batch, encoded, strict=True):
            if len(ids) > budget:
                out.append(prompt_too_long(request.request_id, len(ids), self.config.max_model_len, max_tokens))
            else:
                keep.append((request, ids))
        if not keep:
            return out
        inputs = self.tokenizer.pad({"input_ids": [ids for _, ids in keep]}, return_tensors="pt").to(self.device)
        kwargs: dict[str, Any] = {"max_new_tokens": max_tokens, "pad_token_id": self.tokenizer.pad_token_id}
        # Greedy picks the argmax; when sampling, PerRequestSampler has already drawn each row's token with
        # that request's own seed and left it the only candidate, so batch composition does not change it.
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if temperature > 0:
            from transformers import LogitsProcessorList

            sampler = PerRequestSampler([request.sampling.seed for request, _ in keep], temperature, top_p, self.device)
            kwargs["logits_processor"] = LogitsProcessorList([sampler])
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
        for start in range(0, len(prompts), self.config.resources.batch_size):
            chunk = prompts[start : start + self.config.resources.batch_size]
            encoded = [encode_prompt(self.tokenizer, p) for p in chunk]
            inputs = self.tokenizer.pad({"input_ids": encoded}, return_tensors="pt").to(self.device)
            with torch.inference_mode():
                logits = self.model(**inputs).logits[:, -1, :].float()
            logprobs = torch.log_softmax(logits, dim=-1)
            for row, candidates in zip(logprobs, token_ids[start : start + len(chunk)], strict=True):
                scores.append(row[torch.tensor(candidates, device=row.device)].tolist())
        return scores


class PerRequestSampler:
    """A logits processor that samples each batch row's next token with that row's own torch.Generator.

    Temperature, then top-p (nucleus), then one multinomial draw per row; the returned scores keep only
    the drawn token, which generate's greedy step then takes. A request's tokens depend on its seed and
    its own logits only, not on the other requests in the batch or the global torch RNG (vLLM's
    per-request seed semantics). Rows without a seed draw from a randomly seeded generator.
    """

    def __init__(self, seeds: list[int | None], temperature: float, top_p: float, device: str) -> None:
        import torch

        self.temperature = temperature
        self.top_p = top_p
        self.generators = []
        for seed in seeds:
            generator = torch.Generator(device=device)
            if seed is None:
                generator.seed()
            else:
                generator.manual_seed(int(seed))
            self.generators.append(generator)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        scores = scores / self.temperature
        if self.top_p < 1.0:
            ordered, order = torch.sort(scores, descending=True, dim=-1)
            probs = ordered.softmax(dim=-1)
            # Drop a token when the mass before it already reaches top_p (the top token always stays).
            ordered = ordered.masked_fill(probs.cumsum(dim=-1) - probs >= self.top_p, float("-inf"))
            scores = torch.full_like(scores, float("-inf")).scatter(-1, order, ordered)
        probs = scores.softmax(dim=-1)
        chosen = torch.cat(
            [torch.multinomial(row, 1, generator=gen) for row, gen in zip(probs, self.generators, strict=True)]
        )
        return torch.full_like(scores, float("-inf")).scatter(-1, chosen[:, None], 0.0)


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
