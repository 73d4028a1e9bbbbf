"""Difficulty of (instruction, teacher response) records under a scoring model, in padded batches.

Metrics (config `difficulty.metric`, higher = harder for all of them):
- rank: mean rank score of the response tokens (kernel.py; official top-1 exclusion by default);
- perplexity: exp of the mean negative log-likelihood of the response given the instruction;
- ifd: instruction-following difficulty, conditional / unconditional response perplexity;
- length: response tokens under the scorer's tokenizer (no model);
- random: a seeded uniform draw per record id (no model).

Truncated records (longer than max_length) are always flagged. Model metrics score their visible
response tokens under `difficulty.truncated: official` (the default) and `score_visible`, and leave
them unscored (difficulty None) under `skip`. A record with no visible response token (the prompt
fills max_length) scores 0.0 on the rank metric under `official`, as the official script computes
it, and stays unscored otherwise. Length (the untruncated count) and random score every record.

`difficulty.dtype: float32` (the default) loads the scorer in fp32 as the official script does
(from_pretrained's default), so hidden states, logits and softmax are fp32; `model` keeps the
scorer's own dtype (bf16 on GPU) and upcasts only the logits (docs/fidelity.md gives the bound).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from compeffdist.config import DifficultyConfig, EngineConfig, ModelSpec
from compeffdist.difficulty.kernel import mean_rank_score, token_stats
from compeffdist.difficulty.texts import ScoringText, ScoringTextError, layout_record
from compeffdist.engines.base import use_torch_threads

MODEL_METRICS = ("rank", "perplexity", "ifd")


@dataclass(frozen=True)
class RecordScore:
    """One record's result; `error` set means the record could not be laid out (reject it)."""

    record_id: str
    difficulty: float | None
    truncated: bool
    response_tokens: int
    input_tokens: int
    error: str | None = None


def random_difficulty(seed: int, record_id: str) -> float:
    """A uniform [0, 1) draw that depends only on (seed, record id), not on batch order."""
    digest = hashlib.sha256(f"{seed}|{record_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def scorer_spec(difficulty: DifficultyConfig, student: ModelSpec) -> ModelSpec:
    """The scoring model: the student itself, or the configured proxy."""
    if difficulty.scorer == "proxy":
        assert difficulty.proxy is not None  # enforced by DifficultyConfig's validator
        return difficulty.proxy
    return student


def lm_head(model: Any) -> Callable[[Any], Any]:
    """hidden states -> logits, as the model's own forward computes them (final soft-capping included)."""
    import torch

    head = model.get_output_embeddings()
    if head is None:
        raise ValueError(f"{type(model).__name__} exposes no output embeddings to score with")
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    cap = getattr(config, "final_logit_softcapping", None)
    if not cap:
        return head
    return lambda hidden: torch.tanh(head(hidden) / cap) * cap


class DifficultyScorer:
    """Loads the scorer once (tokenizer always, model only for model metrics) and scores record rows."""

    def __init__(
        self,
        model: ModelSpec,
        difficulty: DifficultyConfig,
        engine: EngineConfig,
        seed: int,
    ) -> None:
        import torch

        from compeffdist.models.registry import load_causal_lm, load_tokenizer

        use_torch_threads(engine.resources)
        self.config = difficulty
        self.batch_size = engine.resources.batch_size
        self.seed = seed
        self.chat_template_kwargs = dict(model.chat_template_kwargs)
        self.device = "cuda" if engine.resources.num_gpus_per_actor > 0 and torch.cuda.is_available() else "cpu"
        self.tokenizer = load_tokenizer(model, padding_side="right")
        weights = model.model_copy(update={"dtype": "float32"}) if difficulty.dtype == "float32" else model
        self.model = load_causal_lm(weights, device=self.device) if difficulty.metric in MODEL_METRICS else None
        self.head = lm_head(self.model) if self.model is not None else None

    def layout(self, row: dict[str, Any], conditional: bool = True) -> ScoringText:
        """The scoring text of a row with record_id, messages (chat.MESSAGES_TYPE), instruction and response."""
        from compeffdist.chat import check_messages

        messages = check_messages(row["messages"]) if self.config.chat_template else []
        return layout_record(
            self.tokenizer,
            str(row["record_id"]),
            messages,
            str(row.get("instruction") or ""),
            str(row["response"]),
            self.config.max_length,
            self.config.chat_template,
            self.chat_template_kwargs,
            conditional=conditional,
        )

    def score(self, rows: list[dict[str, Any]]) -> list[RecordScore]:
        """Score rows (one result per row, in order); layout problems come back as errors."""
        texts: dict[str, ScoringText] = {}
        results: dict[str, RecordScore] = {}
        for row in rows:
            record_id = str(row["record_id"])
            try:
                texts[record_id] = self.layout(row)
            except (ScoringTextError, ValueError) as exc:
                results[record_id] = RecordScore(record_id, None, False, 0, 0, error=str(exc))
        metric = self.config.metric
        visible = self.config.truncated != "skip"
        scorable = [t for t in texts.values() if (visible or not t.truncated) and _has_prediction(t)]
        values: dict[str, float] = {}
        if metric == "rank":
            values = {
                rid: mean_rank_score(s, self.config.exclude_top1) for rid, s in self._rank_scores(scorable).items()
            }
            if self.config.truncated == "official":
                # The official average over no token is 0.0: a prompt that fills max_length scores as easiest.
                values.update({t.record_id: 0.0 for t in texts.values() if not _has_prediction(t)})
        elif metric == "perplexity":
            values = {rid: _perplexity(lp) for rid, lp in self._logprobs(scorable).items()}
        elif metric == "ifd":
            values = self._ifd(scorable, {str(r["record_id"]): r for r in rows})
        for record_id, text in texts.items():
            if metric == "length":
                value: float | None = float(text.response_tokens)
            elif metric == "random":
                value = random_difficulty(self.seed, record_id)
            else:
                value = values.get(record_id)
            results[record_id] = RecordScore(
                record_id, value, text.truncated, text.response_tokens, len(text.input_ids)
            )
        return [results[str(row["record_id"])] for row in rows]

    def token_stats_by_record(self, texts: list[ScoringText]) -> dict[str, tuple[Any, Any]]:
        """record id -> (rank scores, log-probabilities): 1-D CPU tensors over the predicted response tokens.

        All `texts` are sorted by length first and forwarded `batch_size` at a time, so a call with
        many texts pads each batch only to lengths that are close (the stage hands each actor call
        `difficulty.rows_per_task` rows for that reason).
        """
        import torch

        assert self.model is not None and self.head is not None
        out: dict[str, Any] = {}
        ordered = sorted(texts, key=lambda t: (len(t.input_ids), t.record_id))
        pad = self.tokenizer.pad_token_id
        decoder = self.model.get_decoder()
        for start in range(0, len(ordered), self.batch_size):
            batch = ordered[start : start + self.batch_size]
            width = max(len(t.input_ids) for t in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            rows, positions, spans = [], [], []
            for b, text in enumerate(batch):
                ids[b, : len(text.input_ids)] = torch.tensor(text.input_ids)
                mask[b, : len(text.input_ids)] = 1
                # The token at t is predicted at t - 1; a response token at position 0 has no prediction.
                predicted_at = list(range(max(text.response_start, 1) - 1, text.response_end - 1))
                spans.append((text.record_id, len(positions), len(positions) + len(predicted_at)))
                rows += [b] * len(predicted_at)
                positions += predicted_at
            ids, mask = ids.to(self.device), mask.to(self.device)
            with torch.inference_mode():
                hidden = decoder(input_ids=ids, attention_mask=mask).last_hidden_state
                row_index = torch.tensor(rows, dtype=torch.long, device=self.device)
                position_index = torch.tensor(positions, dtype=torch.long, device=self.device)
                stats = token_stats(
                    hidden[row_index, position_index],
                    ids[row_index, position_index + 1],
                    top_p=self.config.top_p,
                    chunk=self.config.position_chunk,
                    head=self.head,
                    partial_sort_k=self.config.partial_sort_k,
                    tie_rule=self.config.tie_rule,
                )
            for record_id, first, last in spans:
                out[record_id] = (stats.rank_score[first:last].cpu(), stats.logprob[first:last].cpu())
        return out

    def _rank_scores(self, texts: list[ScoringText]) -> dict[str, list[float]]:
        return {rid: scores.tolist() for rid, (scores, _) in self.token_stats_by_record(texts).items()}

    def _logprobs(self, texts: list[ScoringText]) -> dict[str, list[float]]:
        return {rid: logprobs.tolist() for rid, (_, logprobs) in self.token_stats_by_record(texts).items()}

    def _ifd(self, texts: list[ScoringText], rows: dict[str, dict[str, Any]]) -> dict[str, float]:
        """Conditional / unconditional perplexity over the same response tokens.

        The two passes can predict different response tokens: without a BOS the unconditional raw
        text starts with the response, whose first token then has no prediction, and a truncated
        conditional text shows fewer tokens than the shorter unconditional one. Both are cut to
        the response tokens they share (indices within the response, assuming the response
        tokenizes alike in both layouts), so the ratio compares like with like.
        """
        conditional = self._logprobs(texts)
        by_id = {t.record_id: t for t in texts}
        alone_texts: dict[str, ScoringText] = {}
        for text in texts:
            try:
                alone = self.layout(rows[text.record_id], conditional=False)
            except ScoringTextError:
                continue  # no unconditional pass: the record stays unscored
            if _has_prediction(alone):
                alone_texts[text.record_id] = alone
        unconditional = self._logprobs(list(alone_texts.values()))
        values = {}
        for record_id, logprobs in conditional.items():
            if record_id not in unconditional:
                continue
            c_first, c_end = _predicted_span(by_id[record_id])
            u_first, u_end = _predicted_span(alone_texts[record_id])
            first, end = max(c_first, u_first), min(c_end, u_end)
            if end > first:
                shared = logprobs[first - c_first : end - c_first]
                alone_shared = unconditional[record_id][first - u_first : end - u_first]
                values[record_id] = _perplexity(shared) / _perplexity(alone_shared)
        return values


def _has_prediction(text: ScoringText) -> bool:
    """At least one visible response token is predicted (a token at position 0 has no prediction)."""
    return text.response_end > max(text.response_start, 1)


def _predicted_span(text: ScoringText) -> tuple[int, int]:
    """[first, end) of the predicted, visible response tokens, as indices within the response."""
    return max(text.response_start, 1) - text.response_start, text.response_end - text.response_start


def _perplexity(logprobs: list[float]) -> float:
    """exp(mean NLL); inf past float range (math.exp raises there), NaN without tokens: selection drops both."""
    if not logprobs:
        return float("nan")
    nll = -sum(logprobs) / len(logprobs)
    return math.exp(nll) if nll < 709.0 else math.inf
