"""Reports of the difficulty and selection stages: score histograms (PNG) and markdown tables.

The run report (compeffdist/report.py) inlines every `files/*.md` and embeds every `files/*.png`.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from compeffdist.difficulty.pool import ScoredPool
from compeffdist.difficulty.sampling import Selection

GROUP_ROWS_SHOWN = 40


def plot_histogram(series: dict[str, Any], path: Path, xlabel: str, title: str) -> Path:
    """Overlaid histograms (shared bins) of one or more score series (sequences or numpy arrays), as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arrays = {label: np.asarray(data, dtype=np.float64) for label, data in series.items()}
    filled = [a for a in arrays.values() if a.size]
    low = min(float(a.min()) for a in filled) if filled else 0.0
    high = max(float(a.max()) for a in filled) if filled else 1.0
    bins = np.linspace(low, high, 31) if high > low else 30
    figure, axis = plt.subplots(figsize=(7, 4))
    for label, data in arrays.items():
        axis.hist(data, bins=bins, alpha=0.55, label=f"{label} (n={data.size})")
    axis.set_xlabel(xlabel)
    axis.set_ylabel("records")
    axis.set_title(title)
    axis.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def summary(values: Sequence[float] | np.ndarray) -> dict[str, float]:
    """Mean and quartiles (linear interpolation, as statistics' "inclusive" method) of a non-empty series."""
    array = np.asarray(values, dtype=np.float64)
    q1, median, q3 = np.quantile(array, [0.25, 0.5, 0.75])
    return {
        "mean": float(array.mean()),
        "min": float(array.min()),
        "q1": float(q1),
        "median": float(median),
        "q3": float(q3),
        "max": float(array.max()),
    }


def difficulty_markdown(rows: pa.Table, settings: dict[str, Any]) -> str:
    """Scores overall and by task kind (`rows`: difficulty, truncated, kind), with the settings and truncation counts.

    Statistics cover finite scores only; NaN/inf scores are counted (selection leaves them out).
    """
    difficulty = rows.column("difficulty")
    valued = len(difficulty) - difficulty.null_count
    finite = pc.fill_null(pc.is_finite(difficulty), False)
    scored = rows.filter(finite)
    truncated = rows.filter(rows.column("truncated"))
    truncated_scored = len(truncated) - truncated.column("difficulty").null_count
    lines = ["# Difficulty scores", ""]
    lines += [f"- {key}: {value}" for key, value in settings.items()]
    lines += [
        f"- records: {rows.num_rows}; scored: {valued}; non-finite: {valued - scored.num_rows}; "
        f"truncated: {truncated.num_rows} ({truncated_scored} scored, "
        f"{truncated.num_rows - truncated_scored} not scored)",
        "",
    ]
    if not scored.num_rows:
        return "\n".join([*lines, "No record could be scored."]) + "\n"
    lines += ["| kind | records | mean | min | median | max |", "|---|---:|---:|---:|---:|---:|"]
    kinds = sorted(str(k) for k in pc.unique(scored.column("kind")).to_pylist())
    for kind in [*kinds, "all"]:
        subset = scored if kind == "all" else scored.filter(pc.equal(scored.column("kind"), kind))
        s = summary(subset.column("difficulty").to_numpy())
        lines.append(
            f"| {kind} | {subset.num_rows} | {s['mean']:.4f} | {s['min']:.4f} | {s['median']:.4f} | {s['max']:.4f} |"
        )
    return "\n".join(lines) + "\n"


def _breakdown(key: str, values: np.ndarray, difficulty: np.ndarray, kept: np.ndarray) -> list[str]:
    """Pool and selected counts and mean difficulty per value of `key` (numpy, whatever the pool size)."""
    names, index = np.unique(values, return_inverse=True)
    total = np.bincount(index, minlength=len(names))
    chosen = np.bincount(index, weights=kept, minlength=len(names))
    sums = np.bincount(index, weights=difficulty, minlength=len(names))
    chosen_sums = np.bincount(index, weights=difficulty * kept, minlength=len(names))
    lines = [
        f"| {key} | pool | selected | rate | mean difficulty (pool) | mean difficulty (selected) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for i, name in enumerate(names.tolist()):
        mean_chosen = f"{chosen_sums[i] / chosen[i]:.4f}" if chosen[i] else "–"
        lines.append(
            f"| {name} | {total[i]} | {int(chosen[i])} | {chosen[i] / total[i]:.3f} | {sums[i] / total[i]:.4f} "
            f"| {mean_chosen} |"
        )
    return lines


def selection_markdown(pool: ScoredPool, usable: np.ndarray, selection: Selection, settings: dict[str, Any]) -> str:
    """Realized ratios overall and per group, and selected vs pool by cluster and by task kind.

    `usable` are the positions in `pool` that were sampled (finite scores), aligned with `selection`.
    """
    kept = selection.kept
    difficulty = pool.difficulty[usable]
    lines = ["# Difficulty-based selection", ""]
    lines += [f"- {key}: {value}" for key, value in settings.items()]
    expected = sum(g.expected for g in selection.groups)
    lines += [
        f"- pool: {len(usable)}; selected: {int(kept.sum())}; realized rate: {selection.rate:.4f} "
        f"(expected {expected / max(len(usable), 1):.4f})",
    ]
    rates = [g.rate for g in selection.groups]
    if rates:
        lines.append(
            f"- groups: {len(rates)}; realized rate per group: min {min(rates):.3f}, "
            f"median {statistics.median(rates):.3f}, max {max(rates):.3f}; "
            f"groups with nothing selected: {sum(g.selected == 0 for g in selection.groups)}"
        )
    kinds = np.array(pool.kind_names, dtype=object)[pool.kind[usable]] if len(usable) else np.array([], object)
    lines += ["", "## By cluster", "", *_breakdown("cluster_id", pool.cluster[usable], difficulty, kept), ""]
    lines += ["## By task kind", "", *_breakdown("kind", kinds, difficulty, kept), ""]
    shown = selection.groups[:GROUP_ROWS_SHOWN]
    lines += ["## Per group", "", "| group | pool | selected | expected | rate |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {g.group} | {g.pool} | {g.selected} | {g.expected:.2f} | {g.rate:.3f} |" for g in shown]
    if len(selection.groups) > len(shown):
        lines.append(f"\n{len(selection.groups) - len(shown)} more groups in selection_groups.json")
    return "\n".join(lines) + "\n"
