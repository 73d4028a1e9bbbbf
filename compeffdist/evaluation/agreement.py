"""How close a model is to its teacher on held-out teacher-labeled records (evaluation.heldout).

Two per-record measures, computed for each evaluated model inside its evaluation task:
- negative log-likelihood of the teacher's answer: the conversation rendered with the model's own
  chat template (chat.render_conversation, the text the student is trained on), summed over the
  answer's tokens (template tokens around it excluded); the reported figure is NLL per token over
  all records. Computed by the difficulty scorer's own forward pass (`perplexity` layout, chat
  template, visible tokens of a record longer than the window);
- label agreement on classification records: the model answers the record's conversation
  greedily; both answers are reduced to a label (labels.py: the sentiment polarity named first,
  else the answer's opening words) and compared. Records whose teacher answer is empty have no
  label and are left out of agreement.

Records are read part by part from the `responses` artifact, keeping only the held-out, usable ones.
"""

from __future__ import annotations

import gc
from typing import Any

import pyarrow as pa

from compeffdist.config import DifficultyConfig, EngineConfig, EvaluationConfig, ModelSpec, SamplingConfig
from compeffdist.evaluation.heldout import heldout_ids
from compeffdist.evaluation.labels import answer_label

CLASSIFICATION_KIND = "classification"
RECORD_COLUMNS = ["record_id", "kind", "messages", "instruction", "response", "error"]
AGREEMENT_SCHEMA = pa.schema(
    [
        ("model", pa.string()),
        ("record_id", pa.string()),
        ("kind", pa.string()),
        ("nll", pa.float64()),  # summed over the scored answer tokens; null: not scorable (reason in nll_error)
        ("tokens", pa.int64()),
        ("nll_error", pa.string()),
        ("teacher_label", pa.string()),  # classification records only
        ("model_label", pa.string()),
        ("model_answer", pa.string()),
    ]
)


def read_heldout_records(part_uris: list[str], evaluation: EvaluationConfig) -> list[dict[str, Any]]:
    """The held-out records with a usable teacher answer, read part by part (narrow columns only)."""
    from compeffdist.difficulty.stages import unusable_reason
    from compeffdist.storage import Location

    records: list[dict[str, Any]] = []
    for uri in part_uris:
        part = Location.of(uri)
        columns = [c for c in RECORD_COLUMNS if c in part.parquet_schema().names]
        table = part.read_parquet(columns=columns)
        table = table.filter(pa.array(heldout_ids(table.column("record_id").to_pylist(), evaluation.heldout)))
        records += [row for row in table.to_pylist() if unusable_reason(row) is None]
    return sorted(records, key=lambda row: row["record_id"])


def score_nll(model: ModelSpec, engine: EngineConfig, records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """record id -> {nll, tokens, nll_error}: the teacher answer's summed NLL under `model`, on the chat layout."""
    from compeffdist.difficulty.scorer import DifficultyScorer
    from compeffdist.difficulty.texts import ScoringTextError

    settings = DifficultyConfig(
        metric="perplexity", chat_template=True, truncated="score_visible", max_length=engine.max_model_len
    )
    scorer = DifficultyScorer(model, settings, engine, seed=0)
    results: dict[str, dict[str, Any]] = {}
    texts = []
    for row in records:
        try:
            texts.append(scorer.layout(row))
        except (ScoringTextError, ValueError) as exc:
            results[row["record_id"]] = {"nll": None, "tokens": 0, "nll_error": str(exc)}
    for record_id, (_, logprobs) in scorer.token_stats_by_record(texts).items():
        if len(logprobs):
            results[record_id] = {"nll": -float(logprobs.sum()), "tokens": len(logprobs), "nll_error": None}
        else:
            results[record_id] = {"nll": None, "tokens": 0, "nll_error": "no answer token inside the window"}
    del scorer
    gc.collect()  # free the scoring model before the evaluation engine loads (one model in memory at a time)
    return results


def answer_classification(engine: Any, records: list[dict[str, Any]], max_new_tokens: int) -> dict[str, dict[str, Any]]:
    """record id -> {teacher_label, model_label, model_answer} for the classification records (greedy answers)."""
    from compeffdist.engines.base import GenerationRequest

    chosen = [row for row in records if row["kind"] == CLASSIFICATION_KIND]
    sampling = SamplingConfig(temperature=0.0, max_tokens=max_new_tokens)
    requests = [GenerationRequest(row["record_id"], messages=row["messages"], sampling=sampling) for row in chosen]
    outputs = engine.generate(requests) if requests else []
    answers = {}
    for row, output in zip(chosen, outputs, strict=True):
        answers[row["record_id"]] = {
            "teacher_label": answer_label(row["response"]),
            "model_label": None if output.error else answer_label(output.text),
            "model_answer": output.text if not output.error else f"<{output.error}>",
        }
    return answers


def agreement_rows(
    label: str,
    records: list[dict[str, Any]],
    nll: dict[str, dict[str, Any]],
    answers: dict[str, dict[str, Any]],
) -> pa.Table:
    """One row per held-out record for model `label` (AGREEMENT_SCHEMA)."""
    rows = []
    for row in records:
        record_id = row["record_id"]
        answer = answers.get(record_id, {})
        rows.append(
            {
                "model": label,
                "record_id": record_id,
                "kind": row["kind"],
                **nll.get(record_id, {"nll": None, "tokens": 0, "nll_error": "not scored"}),
                "teacher_label": answer.get("teacher_label"),
                "model_label": answer.get("model_label"),
                "model_answer": answer.get("model_answer"),
            }
        )
    return pa.Table.from_pylist(rows, schema=AGREEMENT_SCHEMA)
