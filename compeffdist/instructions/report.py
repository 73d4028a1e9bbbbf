"""The instruction-construction report: attribute counts, clusters with their top attributes, templates
per kind, teacher reject rates and token usage (markdown), plus a cluster-size plot (PNG).

The run report (compeffdist/report.py) inlines `files/*.md` and embeds `files/*.png` of each stage.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from compeffdist.instructions.clusters import Cluster
from compeffdist.instructions.normalize import count_histogram
from compeffdist.instructions.schemas import TEMPLATE_KINDS

CLUSTERS_SHOWN = 30
TOP_ATTRIBUTES_SHOWN = 5


def plot_cluster_sizes(clusters: list[Cluster], path: Path) -> Path:
    """Bar chart: total attribute mentions per cluster, labelled by perspective."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = clusters[:CLUSTERS_SHOWN]
    figure, axis = plt.subplots(figsize=(8, 0.3 * len(shown) + 1.5))
    axis.barh([f"{c.cluster_id}: {c.perspective}"[:40] for c in shown], [c.total_count for c in shown])
    axis.invert_yaxis()
    axis.set_xlabel("attribute count (instructions.attribute_count)")
    axis.set_title(
        f"Perspectives: {len(clusters)} clusters" + (f" (first {len(shown)})" if len(shown) < len(clusters) else "")
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _teacher_rows(upstream: dict[str, Any]) -> list[str]:
    lines = [
        "| stage | step | requests | usable | rejected | reject rate | re-asked | recovered |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for stage, manifest in upstream.items():
        if manifest is None:
            continue
        counts = manifest.counts
        for prefix in sorted({k.removesuffix("_requests") for k in counts if k.endswith("_requests")}):
            requests = counts[f"{prefix}_requests"]
            rejected = counts.get(f"{prefix}_rejected", 0)
            rate = f"{rejected / requests:.2f}" if requests else "–"
            lines.append(
                f"| {stage} | {prefix} | {requests} | {counts.get(f'{prefix}_parsed', 0)} | {rejected} | {rate} | "
                f"{counts.get(f'{prefix}_parse_retries', 0)} | {counts.get(f'{prefix}_recovered_by_retry', 0)} |"
            )
    return lines


def _drop_rows(counts_by_stage: dict[str, dict[str, int]]) -> list[str]:
    """Every non-zero `*_dropped_*` / `*_items_dropped` count per stage: what was filtered out and why."""
    lines = ["| stage | count | dropped |", "|---|---|---:|"]
    for stage, counts in counts_by_stage.items():
        for key, value in sorted(counts.items()):
            if value and ("_dropped_" in key or key.endswith("_items_dropped")):
                lines.append(f"| {stage} | {key} | {value} |")
    return lines


def _usage_rows(upstream: dict[str, Any]) -> list[str]:
    lines = ["| stage | model | requests | prompt tokens | output tokens |", "|---|---|---:|---:|---:|"]
    for stage, manifest in upstream.items():
        for model, usage in sorted((manifest.token_usage if manifest else {}).items()):
            lines.append(
                f"| {stage} | {model} | {usage.get('requests', 0)} | {usage.get('prompt_tokens', 0)} | "
                f"{usage.get('output_tokens', 0)} |"
            )
    return lines


def write_report(
    path: Path,
    perspectives: list[dict[str, Any]],
    used_clusters: list[Cluster],
    templates: list[dict[str, Any]],
    upstream: dict[str, Any],
    template_counts: dict[str, int] | None = None,
) -> Path:
    """Write the markdown report; `upstream` maps stage name -> Manifest (or None), `template_counts` are the
    templates stage's own counts (its manifest is written after the report)."""
    counts = sorted(int(r["count"]) for r in perspectives)
    all_clusters = len({r["cluster_id"] for r in perspectives})
    lines = ["# Instruction construction", ""]
    if counts:
        lines.append(
            f"- attributes kept: {len(counts)} (counts: min {counts[0]}, median {counts[len(counts) // 2]}, "
            f"max {counts[-1]}); clusters: {all_clusters}; clusters used for prompts: {len(used_clusters)}"
        )
    kinds = Counter(t["kind"] for t in templates)
    lines.append(f"- templates: {len(templates)} (" + ", ".join(f"{k} {kinds.get(k, 0)}" for k in TEMPLATE_KINDS) + ")")
    per_cluster = Counter(t["cluster_id"] for t in templates)
    if counts:
        lines += ["", "## Attribute counts (kept attributes)", "", "| count | attributes |", "|---|---:|"]
        lines += [f"| {bin_label} | {n} |" for bin_label, n in count_histogram(counts).items()]
    lines += [
        "",
        "## Perspectives",
        "",
        "| cluster | attributes | mentions | templates | top attributes |",
        "|---:|---:|---:|---:|---|",
    ]
    for cluster in used_clusters[:CLUSTERS_SHOWN]:
        top = ", ".join(f"{a.name} ({a.count})" for a in cluster.top(TOP_ATTRIBUTES_SHOWN))
        lines.append(
            f"| {cluster.cluster_id} | {len(cluster.attributes)} | {cluster.total_count} | "
            f"{per_cluster.get(cluster.cluster_id, 0)} | {top} |"
        )
    lines += ["", "## Teacher answers", "", *_teacher_rows(upstream), "", "## Dropped items", ""]
    stage_counts = {stage: manifest.counts for stage, manifest in upstream.items() if manifest}
    lines += _drop_rows({**stage_counts, "templates": template_counts or {}})
    lines += ["", "## Token usage", "", *_usage_rows(upstream)]
    lines += ["", "## Example templates", ""]
    for kind in TEMPLATE_KINDS:
        example = next((t for t in templates if t["kind"] == kind), None)
        if example:
            description = " ".join(example["task_description"].split())[:300]
            lines.append(f"- **{kind}** (cluster {example['cluster_id']}, {example['task_name']}): {description}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
