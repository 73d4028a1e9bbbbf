"""Evaluation outputs: every number as JSON, a side-by-side markdown table, and a bar chart."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from statistics import mean, pstdev
from typing import Any

RESULTS_JSON = "results.json"
RESULTS_MD = "evaluation.md"
RESULTS_PNG = "evaluation.png"
SCORING_NOTES = {
    "official": "official (the official eval_sentibench scorer, comparable with the paper's tables)",
    "strict": "strict (the project's cleaner rules; not comparable with the paper's tables, docs/fidelity.md)",
}


def summarize(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per model: F1 × 100 per dataset (mean and spread over seeds) and the unweighted overall mean."""
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
    return summary


def markdown_table(summary: dict[str, dict[str, Any]]) -> str:
    models = list(summary)
    datasets = list(dict.fromkeys(k for m in models for k in summary[m]["datasets"]))
    lines = ["| dataset | " + " | ".join(models) + " |", "|---|" + "---:|" * len(models)]
    for key in datasets:
        cells = []
        for model in models:
            entry = summary[model]["datasets"].get(key)
            cells.append("–" if entry is None else f"{entry['f1']:.1f} ± {entry['std']:.1f}")
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    lines.append("| **overall** | " + " | ".join(f"**{summary[m]['overall']:.1f}**" for m in models) + " |")
    return "\n".join(lines)


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


def write_reports(rows: list[dict[str, Any]], out_dir: Path) -> dict[str, dict[str, Any]]:
    """Write results.json (every number), evaluation.md (side by side) and evaluation.png."""
    summary = summarize(rows)
    scoring = sorted({r.get("scoring", "official") for r in rows})
    payload = {"scoring": scoring[0] if len(scoring) == 1 else scoring, "rows": rows, "summary": summary}
    (out_dir / RESULTS_JSON).write_text(json.dumps(payload, indent=2, default=str))
    seeds = sorted({r["seed"] for r in rows})
    limit = max((r["n"] for r in rows), default=0)
    text = [
        "# SentiBench evaluation",
        "",
        f"F1 × 100 (macro-F1 for classification, tuple F1 for fine-grained), mean ± std over seeds {seeds}; "
        f"up to {limit} test examples per dataset.",
        "",
        f"Fine-grained scoring: {', '.join(SCORING_NOTES.get(s, s) for s in scoring)}.",
        "",
        markdown_table(summary),
    ]
    (out_dir / RESULTS_MD).write_text("\n".join(text) + "\n")
    bar_chart(summary, out_dir / RESULTS_PNG)
    return summary
