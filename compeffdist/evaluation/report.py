"""Evaluation outputs: every number as JSON, a side-by-side markdown table, and a bar chart."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from statistics import mean, pstdev
from typing import Any

from compeffdist.evaluation.bootstrap import DEFAULT_CONFIDENCE
from compeffdist.evaluation.comparison import f1_measures

RESULTS_JSON = "results.json"
RESULTS_MD = "evaluation.md"
RESULTS_PNG = "evaluation.png"
SCORING_NOTES = {
    "official": "official (the official eval_sentibench scorer, comparable with the paper's tables)",
    "strict": "strict (the project's cleaner rules; not comparable with the paper's tables, docs/fidelity.md)",
}


def summarize(rows: list[dict[str, Any]], confidence: float = DEFAULT_CONFIDENCE) -> dict[str, dict[str, Any]]:
    """Per model: F1 × 100 per dataset (mean and spread over seeds) and the unweighted overall mean, each with
    its bootstrap confidence interval (`ci`) when the rows carry replicates."""
    by_model: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    invalid: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        by_model[row["model"]][row["dataset"]].append(100 * row["f1"])
        invalid[row["model"]][row["dataset"]].append(row.get("invalid_rate", 0.0))
    summary = {}
    for model, datasets in by_model.items():
        per_dataset = {
            key: {
                "f1": round(mean(v), 2),
                "std": round(pstdev(v), 2),
                "invalid_rate": round(mean(invalid[model][key]), 3),
            }
            for key, v in datasets.items()
        }
        summary[model] = {"datasets": per_dataset, "overall": round(mean(d["f1"] for d in per_dataset.values()), 2)}
    if rows and all("f1_replicates" in r for r in rows):
        for model, measures in f1_measures(rows).items():
            for key, measure in measures.items():
                ci = measure.interval(confidence)
                entry = summary[model] if key == "overall" else summary[model]["datasets"][key]
                entry["ci" if key != "overall" else "overall_ci"] = [round(ci.low, 2), round(ci.high, 2)]
    return summary


def markdown_table(summary: dict[str, dict[str, Any]], seeds: int = 1) -> str:
    models = list(summary)
    datasets = list(dict.fromkeys(k for m in models for k in summary[m]["datasets"]))
    lines = ["| dataset | " + " | ".join(models) + " |", "|---|" + "---:|" * len(models)]
    for key in datasets:
        cells = []
        for model in models:
            entry = summary[model]["datasets"].get(key)
            cells.append("–" if entry is None else _cell(entry["f1"], entry.get("ci"), entry["std"], seeds > 1))
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    overall = [f"**{_cell(summary[m]['overall'], summary[m].get('overall_ci'), 0.0, False)}**" for m in models]
    lines.append("| **overall** | " + " | ".join(overall) + " |")
    return "\n".join(lines)


def _cell(f1: float, ci: list[float] | None, std: float, several_seeds: bool) -> str:
    """'62.5 [55.0, 70.0]', with '± std' over demo seeds only when there are several."""
    text = f"{f1:.1f}" + (f" [{ci[0]:.1f}, {ci[1]:.1f}]" if ci else "")
    return text + (f" ± {std:.1f}" if several_seeds else "")


def bar_chart(summary: dict[str, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(summary)
    datasets = list(dict.fromkeys(k for m in models for k in summary[m]["datasets"]))
    width = 0.8 / max(len(models), 1)
    fig, ax = plt.subplots(figsize=(max(6, len(datasets) * 0.9), 4))
    for i, model in enumerate(models):
        values = [summary[model]["datasets"].get(k, {}).get("f1", 0.0) for k in datasets]
        ax.bar([x + i * width for x in range(len(datasets))], values, width, label=model)
    ax.set_xticks([x + width * (len(models) - 1) / 2 for x in range(len(datasets))])
    ax.set_xticklabels([k.split("/")[-1] for k in datasets], rotation=45, ha="right")
    ax.set_ylabel("F1 × 100")
    ax.set_title("SentiBench")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def resolution_note(summary: dict[str, dict[str, Any]], limit: int) -> list[str]:
    """What the intervals resolve: the widest overall interval and the median per-dataset one, against 5 points."""
    overall = [c[1] - c[0] for m in summary.values() if (c := m.get("overall_ci"))]
    per_dataset = sorted(d["ci"][1] - d["ci"][0] for m in summary.values() for d in m["datasets"].values() if "ci" in d)
    if not overall:
        return []
    dataset_width = per_dataset[len(per_dataset) // 2] if per_dataset else float("nan")
    verdict = (
        "a 5-point difference in overall F1 is resolvable"
        if max(overall) / 2 <= 5
        else "a 5-point difference in overall F1 is not resolvable at this budget"
    )
    return [
        "",
        f"Resolution with {limit} test examples per dataset: overall intervals up to {max(overall):.1f} points wide "
        f"(per dataset, median {dataset_width:.1f}): {verdict}; per-dataset differences smaller than about half "
        "the per-dataset width are not (raise evaluation.limit for more).",
    ]


def write_reports(
    rows: list[dict[str, Any]], out_dir: Path, confidence: float = DEFAULT_CONFIDENCE
) -> dict[str, dict[str, Any]]:
    """Write results.json (every number), evaluation.md (side by side) and evaluation.png."""
    summary = summarize(rows, confidence)
    scoring = sorted({r.get("scoring", "official") for r in rows})
    listed = [{k: v for k, v in r.items() if k != "f1_replicates"} for r in rows]  # replicates: the stage's table
    payload = {"scoring": scoring[0] if len(scoring) == 1 else scoring, "rows": listed, "summary": summary}
    (out_dir / RESULTS_JSON).write_text(json.dumps(payload, indent=2, default=str))
    seeds = sorted({r["seed"] for r in rows})
    limit = max((r["n"] for r in rows), default=0)
    text = [
        "# SentiBench evaluation",
        "",
        f"F1 × 100 (macro-F1 for classification, tuple F1 for fine-grained) with its {confidence:.0%} bootstrap "
        f"confidence interval (test examples resampled; overall: the datasets' resamples averaged)"
        + (f", ± std over demo seeds {seeds}" if len(seeds) > 1 else f", demo seed {seeds[0]}" if seeds else "")
        + f"; up to {limit} test examples per dataset.",
        "",
        f"Fine-grained scoring: {', '.join(SCORING_NOTES.get(s, s) for s in scoring)}.",
        "",
        markdown_table(summary, len(seeds)),
        *resolution_note(summary, limit),
    ]
    (out_dir / RESULTS_MD).write_text("\n".join(text) + "\n")
    bar_chart(summary, out_dir / RESULTS_PNG)
    return summary
