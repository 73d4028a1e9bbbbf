"""Evaluate one model on SentiBench through the engine interface (any backend), batched."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from compeffdist.chat import render_prompt, user_turn
from compeffdist.config import EngineConfig, EvaluationConfig, ModelSpec, SamplingConfig
from compeffdist.engines.base import Engine, GenerationRequest
from compeffdist.evaluation import official
from compeffdist.evaluation.bootstrap import f1_replicates, macro_f1_replicates
from compeffdist.evaluation.datasets import CLASSIFICATION, OPENER, SPECS, DatasetSpec, Example, load_examples
from compeffdist.evaluation.metrics import Scores, classification_scores, opener_scores, token_index_sets, tuple_scores
from compeffdist.evaluation.parsing import parse_opinions, parse_tuples
from compeffdist.evaluation.prompts import STOP, build_prompt, sample_demos


def verbalizer_ids(tokenizer: Any, labels: tuple[str, ...]) -> tuple[list[int], list[str]]:
    """First sub-token of ' <label>' per label, and the labels that collide on the same token."""
    ids = [tokenizer.encode(" " + label, add_special_tokens=False)[0] for label in labels]
    seen: dict[int, str] = {}
    collisions = []
    for label, token in zip(labels, ids, strict=True):
        if token in seen:
            collisions.append(f"{seen[token]!r}/{label!r} share token {token}")
        seen.setdefault(token, label)
    return ids, collisions


def _as_chat(engine: Engine, prompt: str, model: ModelSpec) -> str:
    return render_prompt(engine.tokenizer, user_turn(prompt), model.chat_template_kwargs)


@dataclass(frozen=True)
class Scored:
    """A dataset's answers, ready to score: the metric function with the gold and predicted items per example.
    Kept apart so the same function scores the bootstrap resamples of the examples."""

    score: Callable[[Sequence[Any], Sequence[Any]], Scores]
    gold: list[Any]
    predicted: list[Any]

    def metric(self) -> Scores:
        return self.score(self.gold, self.predicted)


def evaluate_dataset(
    engine: Engine, model: ModelSpec, spec: DatasetSpec, tests: list[Example], pool: list[Example],
    evaluation: EvaluationConfig, seed: int,
) -> dict[str, Any]:  # fmt: skip
    """One (dataset, seed) run over `tests` with demos from `pool`: prompts, predictions, metrics, invalid rate."""
    if evaluation.limit is not None:
        tests = tests[: evaluation.limit]
    k = 0 if evaluation.zero_shot else evaluation.k_shot
    demos = sample_demos(pool, k, seed, len(tests)) if k else [[]] * len(tests)
    prompts = [build_prompt(spec, t, d) for t, d in zip(tests, demos, strict=True)]
    if evaluation.chat_template:
        prompts = [_as_chat(engine, p, model) for p in prompts]
    started = time.time()
    result: dict[str, Any] = {"dataset": spec.key, "group": spec.group, "seed": seed, "n": len(tests)}
    if spec.kind == CLASSIFICATION:
        ids, collisions = verbalizer_ids(engine.tokenizer, spec.labels)
        scores = engine.next_token_logprobs(prompts, [ids] * len(prompts))
        predicted = [spec.labels[max(range(len(ids)), key=row.__getitem__)] for row in scores]
        scored = Scored(classification_scores, [t.gold for t in tests], predicted)
        result.update(invalid_rate=0.0, verbalizer_collisions=collisions)
    else:
        scored, invalid, errors = _fine_grained(engine, spec, tests, prompts, evaluation, k)
        result.update(invalid_rate=invalid, engine_errors=errors)
    result["scoring"] = evaluation.scoring
    result.update({k: v for k, v in asdict(scored.metric()).items()})
    key = f"sentibench|{spec.key}|{seed}"  # the same examples get the same resamples for every model
    result["f1_replicates"] = (
        macro_f1_replicates(scored.gold, scored.predicted, key, evaluation.bootstrap_resamples)
        if spec.kind == CLASSIFICATION
        else f1_replicates(scored.score, scored.gold, scored.predicted, key, evaluation.bootstrap_resamples)
    )
    result["seconds"] = round(time.time() - started, 2)
    return result


def _fine_grained(
    engine: Engine, spec: DatasetSpec, tests: list[Example], prompts: list[str], evaluation: EvaluationConfig,
    k: int,
) -> tuple[Scored, float, int]:  # fmt: skip
    """Generate the JSON answers and parse them: (what to score, share of answers that did not parse, engine errors).

    Official scoring lets generation run to max_new_tokens (no stop string) and reads the answer from the
    prompt + continuation, as the official script does: its extractor can take the answer from a later
    demo block the model goes on to write. Strict scoring stops at the next demo and reads the continuation.
    """
    official_scoring = evaluation.scoring == "official"
    max_tokens = evaluation.max_new_tokens_opener if spec.kind == OPENER else evaluation.max_new_tokens
    sampling = SamplingConfig(temperature=0.0, max_tokens=max_tokens)
    stop = None if official_scoring else [STOP]
    requests = [
        GenerationRequest(f"{spec.key}#{i}", prompt=p, sampling=sampling, stop=stop) for i, p in enumerate(prompts)
    ]
    outputs = engine.generate(requests)
    errors = sum(1 for o in outputs if o.error)
    if official_scoring:
        answers = [
            official.load_answer(official.extract_answer(p + o.text, k)) for p, o in zip(prompts, outputs, strict=True)
        ]
        unparsed = sum(a is None for a in answers) / max(len(answers), 1)
        golds = [t.official_gold for t in tests]
        if spec.kind == OPENER:
            predicted = [official.opinion_predictions(a or [], t.sentence) for a, t in zip(answers, tests, strict=True)]
            return Scored(official.opener_scores, golds, predicted), unparsed, errors
        predicted = [
            official.tuple_predictions(spec.key, a or [], t.sentence) for a, t in zip(answers, tests, strict=True)
        ]
        return Scored(official.tuple_scores, golds, predicted), unparsed, errors
    parsed = [
        parse_opinions(o.text, t.sentence) if spec.kind == OPENER else parse_tuples(spec, o.text, t.sentence)
        for o, t in zip(outputs, tests, strict=True)
    ]
    unparsed = sum(1 for _, ok in parsed if not ok) / max(len(parsed), 1)
    predictions = [p for p, _ in parsed]
    if spec.kind == OPENER:
        return Scored(opener_scores, [_opener_gold(t) for t in tests], predictions), unparsed, errors
    return Scored(tuple_scores, [t.gold for t in tests], predictions), unparsed, errors


def _opener_gold(example: Example) -> list[tuple]:
    return [
        (token_index_sets(example.sentence, h), token_index_sets(example.sentence, t),
         token_index_sets(example.sentence, e), polarity)
        for h, t, e, polarity in example.gold
    ]  # fmt: skip


def evaluate_with_engine(
    engine: Engine, model: ModelSpec, evaluation: EvaluationConfig, data_root: Path, label: str
) -> list[dict[str, Any]]:
    """Every configured dataset × seed for one loaded model."""
    rows = []
    for key in evaluation.datasets:
        tests, pool = load_examples(data_root, key, "test"), load_examples(data_root, key, "train")  # once per dataset
        for seed in evaluation.seeds:
            row = evaluate_dataset(engine, model, SPECS[key], tests, pool, evaluation, seed)
            rows.append({"model": label, "model_name": engine.model_name, **row})
    return rows


def evaluate_models(
    models: dict[str, ModelSpec], engine: EngineConfig, evaluation: EvaluationConfig, data_root: Path, out_dir: Path
) -> dict[str, dict[str, Any]]:
    """Load each model in turn, evaluate it, and write results.json / evaluation.md / evaluation.png side by side.

    Returns the summary per model label (per-dataset F1 × 100 and the overall mean).
    """
    from compeffdist.engines import create_engine
    from compeffdist.evaluation.report import write_reports

    rows: list[dict[str, Any]] = []
    for label, model in models.items():
        loaded = create_engine(model, engine)
        rows += evaluate_with_engine(loaded, model, evaluation, Path(data_root), label)
        del loaded  # one model in memory at a time
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return write_reports(rows, out_dir)
