"""Every evaluation figure with its bootstrap confidence interval, and the student − base student differences.

- SentiBench F1 × 100: per dataset from the replicates each evaluation row carries (test examples
  resampled, evaluation/bootstrap.py), the overall mean from the per-dataset replicates averaged
  (a stratified bootstrap), demo seeds averaged.
- Held-out teacher agreement (agreement.py): label agreement (%) on the classification records whose
  teacher answer names a label, and NLL per token of the teacher's answers, on the records every
  model could be scored on, resampled by record.
Models share resamples, so each difference is a paired bootstrap; a difference is significant when
its interval excludes zero.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from compeffdist.evaluation.bootstrap import Interval, interval, mean_replicates, ratio_replicates

COMPARISON_MD = "teacher_agreement.md"
COMPARISON_JSON = "comparison.json"
HELDOUT_RECORDS = "heldout_agreement.parquet"  # agreement.AGREEMENT_SCHEMA rows of every model
AGREEMENT_KEY = "heldout-label-agreement"
NLL_KEY = "heldout-nll"
TRAINED, BASE = "student", "base_student"


@dataclass
class Measure:
    """A figure for one model: full-sample estimate and its replicates (shared resamples across models)."""

    estimate: float
    replicates: np.ndarray
    n: int

    def interval(self, confidence: float) -> Interval:
        return interval(self.estimate, self.replicates, confidence)

    def minus(self, other: Measure, confidence: float) -> Interval:
        return interval(self.estimate - other.estimate, self.replicates - other.replicates, confidence)


@dataclass
class HeldoutMeasures:
    """Per model: label agreement (fraction) and NLL per token, on records common to all models."""

    agreement: dict[str, Measure] = field(default_factory=dict)
    nll: dict[str, Measure] = field(default_factory=dict)
    records: int = 0
    labeled: int = 0
    skipped: dict[str, int] = field(default_factory=dict)


def f1_measures(rows: list[dict[str, Any]]) -> dict[str, dict[str, Measure]]:
    """model -> dataset (and 'overall') -> F1 × 100 with replicates, demo seeds averaged."""
    grouped: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        grouped[row["model"]][row["dataset"]].append(row)
    out: dict[str, dict[str, Measure]] = {}
    for model, datasets in grouped.items():
        per_dataset = {}
        for key, dataset_rows in datasets.items():
            reps = np.mean([np.asarray(r["f1_replicates"], dtype=np.float64) for r in dataset_rows], axis=0)
            per_dataset[key] = Measure(
                100 * float(np.mean([r["f1"] for r in dataset_rows])), 100 * reps, dataset_rows[0]["n"]
            )
        overall = Measure(
            float(np.mean([m.estimate for m in per_dataset.values()])),
            np.mean([m.replicates for m in per_dataset.values()], axis=0),
            sum(m.n for m in per_dataset.values()),
        )
        out[model] = {**per_dataset, "overall": overall}
    return out


def heldout_measures(table: pa.Table, resamples: int, seed: int = 0) -> HeldoutMeasures:
    """Label agreement and NLL per token per model, on the held-out records every model was scored on."""
    rows = table.to_pylist()
    models = list(dict.fromkeys(r["model"] for r in rows))
    by_model: dict[str, dict[str, dict[str, Any]]] = {m: {} for m in models}
    for row in rows:
        by_model[row["model"]][row["record_id"]] = row
    every = sorted(set.intersection(*(set(v) for v in by_model.values()))) if models else []
    scored = [rid for rid in every if all(by_model[m][rid]["nll"] is not None for m in models)]
    labeled = [rid for rid in every if by_model[models[0]][rid]["teacher_label"] is not None]
    result = HeldoutMeasures(records=len(scored), labeled=len(labeled))
    result.skipped = {m: sum(1 for r in by_model[m].values() if r["nll"] is None) for m in models}
    for model in models:
        records = by_model[model]
        if scored:
            nll = np.array([records[rid]["nll"] for rid in scored], dtype=np.float64)
            tokens = np.array([records[rid]["tokens"] for rid in scored], dtype=np.float64)
            result.nll[model] = Measure(
                float(nll.sum() / tokens.sum()), ratio_replicates(nll, tokens, NLL_KEY, resamples, seed), len(scored)
            )
        if labeled:
            agree = np.array(
                [records[rid]["model_label"] == records[rid]["teacher_label"] for rid in labeled], dtype=np.float64
            )
            result.agreement[model] = Measure(
                100 * float(agree.mean()), 100 * mean_replicates(agree, AGREEMENT_KEY, resamples, seed), len(labeled)
            )
    return result


def _difference(measures: dict[str, Measure], confidence: float) -> Interval | None:
    if TRAINED in measures and BASE in measures:
        return measures[TRAINED].minus(measures[BASE], confidence)
    return None


def headline(heldout: HeldoutMeasures, f1: dict[str, dict[str, Measure]], confidence: float) -> str:
    """One sentence: is the trained student closer to its teacher than the base student, and is it significant."""
    level = f"{round(100 * confidence)}% CI"
    nll_diff = _difference(heldout.nll, confidence)
    if nll_diff is None:
        overall = _difference({m: v["overall"] for m, v in f1.items()}, confidence)
        if overall is None:
            return ""
        return (
            f"No held-out teacher-labeled records (evaluation.heldout.fraction is 0): on SentiBench the trained "
            f"student differs from its base by {overall.format(signed=True)} F1 points ({level})."
        )
    verdict = "closer to" if nll_diff.high < 0 else ("further from" if nll_diff.low > 0 else "not measurably closer to")
    text = (
        f"On {heldout.records} held-out teacher-labeled records never trained on, the trained student is {verdict} "
        f"its teacher than its base: NLL of the teacher's answers {heldout.nll[TRAINED].estimate:.3f} vs "
        f"{heldout.nll[BASE].estimate:.3f} nats/token (difference {nll_diff.format(3, signed=True)}, {level}"
        f"{', excludes 0' if nll_diff.excludes_zero else ', includes 0'})"
    )
    label_diff = _difference(heldout.agreement, confidence)
    if label_diff is not None:
        text += (
            f"; label agreement {heldout.agreement[TRAINED].estimate:.1f}% vs {heldout.agreement[BASE].estimate:.1f}% "
            f"on {heldout.labeled} classification records (difference {label_diff.format(signed=True)} points"
            f"{', excludes 0' if label_diff.excludes_zero else ', includes 0'})"
        )
    return text + "."


def _cell(measure: Measure | None, confidence: float, digits: int = 1) -> str:
    return "–" if measure is None else measure.interval(confidence).format(digits)


def markdown(heldout: HeldoutMeasures, f1: dict[str, dict[str, Measure]], confidence: float) -> str:
    """The teacher-agreement table, and the student − base differences of every measure."""
    level = f"{round(100 * confidence)}%"
    models = list(heldout.nll or heldout.agreement or f1)
    lines = ["# Agreement with the teacher on held-out records", ""]
    if heldout.records:
        lines += [
            f"Estimates with {level} bootstrap confidence intervals (records resampled, paired across models). "
            f"NLL: nats per token of the teacher's answers on {heldout.records} held-out records (lower is closer). "
            f"Label agreement: % of the {heldout.labeled} held-out classification records where the model's greedy "
            "answer has the teacher answer's label (the sentiment polarity named first, else the first six words "
            "of the answer, normalized: evaluation/labels.py).",
            "",
            "| model | NLL / token | label agreement % |",
            "|---|---:|---:|",
        ]
        for model in models:
            lines.append(
                f"| {model} | {_cell(heldout.nll.get(model), confidence, 3)} | "
                f"{_cell(heldout.agreement.get(model), confidence)} |"
            )
        skipped = {m: n for m, n in heldout.skipped.items() if n}
        if skipped:
            lines += ["", f"Records a model could not score (left out for every model): {skipped}."]
    else:
        lines += ["No held-out records (set evaluation.heldout.fraction to measure agreement with the teacher)."]
    rows = []
    for name, measures, digits in (
        ("NLL / token (negative: closer to the teacher)", heldout.nll, 3),
        ("label agreement, points", heldout.agreement, 1),
        ("SentiBench overall F1, points", {m: v["overall"] for m, v in f1.items()}, 1),
    ):
        diff = _difference(measures, confidence)
        if diff is not None:
            verdict = "yes" if diff.excludes_zero else "no"
            rows.append(f"| {name} | {diff.format(digits, signed=True)} | {verdict} |")
    if rows:
        lines += ["", f"## Trained student − base student ({level} CI, paired)", ""]
        lines += ["| measure | difference | CI excludes 0 |", "|---|---:|---|", *rows]
    return "\n".join(lines) + "\n"


def as_json(heldout: HeldoutMeasures, f1: dict[str, dict[str, Measure]], confidence: float) -> dict[str, Any]:
    def intervals(measures: dict[str, Measure]) -> dict[str, Any]:
        return {m: {**v.interval(confidence).as_dict(), "n": v.n} for m, v in measures.items()}

    differences = {
        name: diff.as_dict()
        for name, measures in (
            ("nll", heldout.nll),
            ("label_agreement", heldout.agreement),
            ("overall_f1", {m: v["overall"] for m, v in f1.items()}),
        )
        if (diff := _difference(measures, confidence)) is not None
    }
    return {
        "heldout": {
            "records": heldout.records,
            "labeled": heldout.labeled,
            "skipped": heldout.skipped,
            "nll": intervals(heldout.nll),
            "label_agreement": intervals(heldout.agreement),
        },
        "f1": {model: intervals(datasets) for model, datasets in f1.items()},
        "student_minus_base": differences,
    }


def write_comparison(
    rows: list[dict[str, Any]], heldout_table: pa.Table, out_dir: Path, resamples: int, confidence: float
) -> str:
    """Write teacher_agreement.md and comparison.json; return the headline sentence."""
    f1 = f1_measures(rows)
    heldout = heldout_measures(heldout_table, resamples)
    (out_dir / COMPARISON_MD).write_text(markdown(heldout, f1, confidence), encoding="utf-8")
    (out_dir / COMPARISON_JSON).write_text(json.dumps(as_json(heldout, f1, confidence), indent=1), encoding="utf-8")
    return headline(heldout, f1, confidence)
