"""The run report: one markdown page per run, rebuilt at the end of every `compeffdist run`.

It is assembled from what stages published: manifests (timings, counts, tokens), accounting, and
each stage's own report files (`files/*.md` are inlined, `files/*.png` embedded), so a stage that
adds a plot or a table shows up here without this module knowing about it.
"""

from __future__ import annotations

from typing import Any

from compeffdist.artifacts import ArtifactStore
from compeffdist.redact import redact_text
from compeffdist.storage import Location

REPORT_FILE = "report.md"


def _stage_table(store: ArtifactStore, stage_names: list[str]) -> list[str]:
    lines = [
        "| stage | rows | rejects | wall s | prompt tokens | output tokens | finished |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name in stage_names:
        manifest = store.manifest(name)
        if manifest is None:
            lines.append(f"| {name} | – | – | – | – | – | not run |")
            continue
        tokens = manifest.token_totals()
        prompt, output = tokens["prompt_tokens"], tokens["output_tokens"]
        lines.append(
            f"| {name} | {manifest.counts.get('rows', '')} | {manifest.counts.get('rejects', 0)} | "
            f"{manifest.wall_time_s:.1f} | {prompt} | {output} | {manifest.finished_at} |"
        )
    return lines


def _stage_files(store: ArtifactStore, name: str) -> list[str]:
    manifest = store.manifest(name)
    if manifest is None:
        return []
    files = store.files(name, manifest)
    lines: list[str] = []
    for path in files.list_files(".md"):
        body = path.read_text().strip()
        # Demote the stage report's own headings so they nest under this page's stage heading.
        lines += [("##" + line) if line.startswith("#") else line for line in body.splitlines()] + [""]
    for path in files.list_files(".png"):
        # Relative to the report at the run's root, so the page renders wherever the run is copied.
        link = path.path.removeprefix(store.root.path + "/")
        lines += [f"![{name}: {path.name.removesuffix('.png')}]({link})", ""]
    return lines


def write_report(store: ArtifactStore, stage_names: list[str], accounting: dict[str, Any], title: str) -> Location:
    """Write `<output_dir>/report.md` and return where it is."""
    totals, projection = accounting["totals"], accounting["projection"]
    lines = [f"# compeffdist run: {title}", "", "## Stages", "", *_stage_table(store, stage_names), ""]
    lines += [
        "## Cost",
        "",
        f"- tokens: {totals['prompt_tokens']} prompt, {totals['output_tokens']} output, {totals['requests']} requests",
        f"- actor time: {totals['actor_seconds']:.0f} s; GPU-hours measured: {totals['gpu_hours']:.3f}",
        f"- projected on {projection['gpu_type']} at {projection['assumed_output_tokens_per_gpu_second']} output "
        f"tok/s and {projection['assumed_prompt_tokens_per_gpu_second']} prompt tok/s (forward-only stages) per "
        f"GPU: {projection['gpu_hours']:.3f} GPU-hours"
        + (f" (≈ ${projection['usd']})" if projection.get("usd") is not None else ""),
        "",
    ]
    for name in stage_names:
        section = _stage_files(store, name)
        if section:
            lines += [f"## {name}", "", *section]
    path = store.root / REPORT_FILE
    path.write_text(redact_text("\n".join(lines).rstrip() + "\n"))
    return path
