"""The run report lists every stage and inlines what stages published (markdown, plots)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from compeffdist.artifacts import ArtifactStore, Manifest
from compeffdist.report import write_report

pytestmark = pytest.mark.unit


def test_report_has_stage_table_cost_and_stage_files(tmp_path):
    store = ArtifactStore(tmp_path / "run")
    files = tmp_path / "files"
    files.mkdir()
    (files / "summary.md").write_text("# Difficulty\n\nmean score 0.42\n", encoding="utf-8")
    (files / "histogram.png").write_bytes(b"\x89PNG fake")
    usage = {"t": {"prompt_tokens": 10, "output_tokens": 20, "requests": 2}}
    published = store.commit(
        Manifest("difficulty", "h", {}, 1, token_usage=usage), pa.table({"x": [1, 2]}), files_from=files
    )
    accounting = {
        "totals": {"prompt_tokens": 10, "output_tokens": 20, "requests": 2, "actor_seconds": 5.0, "gpu_hours": 0.0},
        "projection": {
            "gpu_type": "H100",
            "assumed_output_tokens_per_gpu_second": 400.0,
            "assumed_prompt_tokens_per_gpu_second": 5000.0,
            "gpu_hours": 0.0,
            "usd": None,
        },
    }
    path = write_report(store, ["pool", "difficulty"], accounting, "t1")
    text = path.read_text()
    assert "| pool | – |" in text and "not run" in text
    assert "| difficulty | 2 | 0 |" in text and "| 10 | 20 |" in text
    assert "### Difficulty" in text and "mean score 0.42" in text
    image = f"difficulty/{published.version}/files/histogram.png"
    assert f"![difficulty: histogram]({image})" in text and (tmp_path / "run" / image).is_file()


def test_a_stage_headline_opens_the_report(tmp_path):
    store = ArtifactStore(tmp_path / "run")
    sentence = "On 40 held-out records the trained student is closer to its teacher than its base."
    store.commit(Manifest("evaluation", "h", {}, 1, extra={"headline": sentence}), pa.table({"x": [1]}))
    accounting = {
        "totals": {"prompt_tokens": 0, "output_tokens": 0, "requests": 0, "actor_seconds": 0.0, "gpu_hours": 0.0},
        "projection": {"gpu_type": "H100", "assumed_output_tokens_per_gpu_second": 1.0,
                       "assumed_prompt_tokens_per_gpu_second": 1.0, "gpu_hours": 0.0, "usd": None},
    }  # fmt: skip
    text = write_report(store, ["pool", "evaluation"], accounting, "t2").read_text()
    assert text.index(sentence) < text.index("## Stages")
    assert f"**evaluation:** {sentence}" in text
