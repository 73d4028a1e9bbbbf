"""Reports of the difficulty and selection stages: score histograms (PNG) and markdown tables.

The run report (compeffdist/report.py) inlines every `files/*.md` and embeds every `files/*.png`.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

from compeffdist.difficulty.sampling import Selection

GROUP_ROWS_SHOWN = 40


def plot_histogram(series: dict[str, Sequence[float]], path: Path, xlabel: str, title: str) -> Path:
    """Overlaid histograms (shared bins) of one or more score series, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = [v for s in series.values() for v in s]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    bins = [low + (high - low) * i / 30 for i in range(31)] if high > low else 30
    figure, axis = plt.subplots(figsize=(7, 4))
    for label, data in series.items():
        axis.hist(list(data), bins=bins, alpha=0.55, label=f"{label} (n={len(data)})")
    axis.set_xlabel(xlabel)
    axis.set_ylabel("records")
    axis.set_title(title)
    axis.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def summary(values: Sequence[float]) -> dict[str, float]:
    """Mean and quartiles of a non-empty series."""
    ordered = sorted(values)
    quartiles = statistics.quantiles(ordered, n=4, method="inclusive") if len(ordered) > 1 else [ordered[0]] * 3
    return {
        "mean": statistics.fmean(ordered),
        "min": ordered[0],
        "q1": quartiles[0],
        "median": quartiles[1],
        "q3": quartiles[2],
        "max": ordered[-1],
    }


def difficulty_markdown(rows: list[dict[str, Any]], settings: dict[str, Any]) -> str:
    """Scores overall and by task kind, with the scoring settings and truncation counts.

    Statistics cover finite scores only; NaN/inf scores are counted (selection leaves them out).
    """
    valued = [r for r in rows if r["difficulty"] is not None]
    scored = [r for r in valued if math.isfinite(r["difficulty"])]
    truncated = [r for r in rows if r["truncated"]]
    truncated_scored = sum(r["difficulty"] is not None for r in truncated)
    lines = ["# Difficulty scores", ""]
    lines += [f"- {key}: {value}" for key, value in settings.items()]
    lines += [
        f"- records: {len(rows)}; scored: {len(valued)}; non-finite: {len(valued) - len(scored)}; "
        f"truncated: {len(truncated)} ({truncated_scored} scored, {len(truncated) - truncated_scored} not scored)",
        "",
    ]
    if not scored:
        return "\n".join([*lines, "No record could be scored."]) + "\n"
    lines += ["| kind | records | mean | min | median | max |", "|---|---:|---:|---:|---:|---:|"]
    by_kind: dict[str, list[float]] = defaultdict(list)
    for row in scored:
        by_kind[str(row["kind"])].append(row["difficulty"])
    for kind in [*sorted(by_kind), "all"]:
        values = by_kind[kind] if kind != "all" else [r["difficulty"] for r in scored]
        s = summary(values)
        lines.append(
            f"| {kind} | {len(values)} | {s['mean']:.4f} | {s['min']:.4f} | {s['median']:.4f} | {s['max']:.4f} |"
        )
    return "\n".join(lines) + "\n"


def _breakdown(pool: list[dict[str, Any]], kept: Sequence[bool], key: str) -> list[str]:
    counts: dict[Hashable, list[int]] = defaultdict(lambda: [0, 0])
    sums: dict[Hashable, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for row, is_kept in zip(pool, kept, strict=True):
        counts[row[key]][0] += 1
        sums[row[key]][0] += row["difficulty"]
        if is_kept:
            counts[row[key]][1] += 1
            sums[row[key]][1] += row["difficulty"]
    lines = [
        f"| {key} | pool | selected | rate | mean difficulty (pool) | mean difficulty (selected) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for value in sorted(counts, key=lambda v: (str(type(v)), v)):
        total, chosen = counts[value]
        mean_chosen = f"{sums[value][1] / chosen:.4f}" if chosen else "–"
        lines.append(
            f"| {value} | {total} | {chosen} | {chosen / total:.3f} | {sums[value][0] / total:.4f} | {mean_chosen} |"
        )
    return lines


def selection_markdown(pool: list[dict[str, Any]], selection: Selection, settings: dict[str, Any]) -> str:
    """Realized ratios overall and per group, and selected vs pool by cluster and by task kind."""
    kept = selection.kept.tolist()
    lines = ["# Difficulty-based selection", ""]
    lines += [f"- {key}: {value}" for key, value in settings.items()]
    expected = sum(g.expected for g in selection.groups)
    lines += [
        f"- pool: {len(pool)}; selected: {sum(kept)}; realized rate: {selection.rate:.4f} "
        f"(expected {expected / max(len(pool), 1):.4f})",
    ]
    rates = [g.rate for g in selection.groups]
    if rates:
        lines.append(
            f"- groups: {len(rates)}; realized rate per group: min {min(rates):.3f}, "
            f"median {statistics.median(rates):.3f}, max {max(rates):.3f}; "
            f"groups with nothing selected: {sum(g.selected == 0 for g in selection.groups)}"
        )
    lines += ["", "## By cluster", "", *_breakdown(pool, kept, "cluster_id"), ""]
    lines += ["## By task kind", "", *_breakdown(pool, kept, "kind"), ""]
    shown = selection.groups[:GROUP_ROWS_SHOWN]
    lines += ["## Per group", "", "| group | pool | selected | expected | rate |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {g.group} | {g.pool} | {g.selected} | {g.expected:.2f} | {g.rate:.3f} |" for g in shown]
    if len(selection.groups) > len(shown):
        lines.append(f"\n{len(selection.groups) - len(shown)} more groups in selection_groups.json")
    return "\n".join(lines) + "\n"
