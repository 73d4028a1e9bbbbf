"""The README's main job: `compeffdist run configs/local.yaml`, every stage, real SmolLM2 teacher (slow tier)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from compeffdist.artifacts import ArtifactStore
from compeffdist.pipeline import all_stages

REPO = Path(__file__).resolve().parents[2]
# A safety net, not a performance assertion: the wall time is printed and tracked in the closing notes.
TIMEOUT_S = 30 * 60
RERUN_TIMEOUT_S = 10 * 60
# The run and its no-op re-run each have their own budget; pytest's global 900 s would cut the first short.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(TIMEOUT_S + RERUN_TIMEOUT_S + 60)]


def test_local_default_runs_every_stage_and_reports(tmp_path, data_root):
    config = tmp_path / "local.yaml"
    text = (REPO / "configs" / "local.yaml").read_text(encoding="utf-8")
    config.write_text(text.replace("../runs/local", str(tmp_path / "run")), encoding="utf-8")
    env = {**os.environ, "COMPEFFDIST_DATA_ROOT": str(data_root)}
    cli = [sys.executable, "-m", "compeffdist.cli"]
    started = time.time()
    result = subprocess.run([*cli, "run", str(config)], env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    elapsed = time.time() - started
    print(f"local pipeline wall time: {elapsed:.0f}s", file=sys.stderr)
    assert result.returncode == 0, result.stderr[-5000:]
    store = ArtifactStore(tmp_path / "run")
    names = [s.name for s in all_stages()]
    for name in names:
        assert store.manifest(name) is not None, f"stage {name} did not publish"
        assert f"\n{name} " in result.stdout and "done" in result.stdout
    assert (store.files_dir("training") / "model" / "config.json").is_file()
    assert (tmp_path / "run" / "report.md").is_file() and (tmp_path / "run" / "accounting.json").is_file()
    assert store.manifest("responses").token_usage, "teacher token usage was not recorded"
    # The local default distills measurably: closer to the teacher than the base student on held-out records.
    headline = store.manifest("evaluation").extra["headline"]
    assert "the trained student is closer to its teacher than its base" in headline, headline
    assert headline in (tmp_path / "run" / "report.md").read_text(encoding="utf-8")
    # Progress lines were printed while the teacher worked.
    assert "rows/s" in result.stderr and "ETA" in result.stderr

    # A second run is free: every stage is skipped.
    again = subprocess.run([*cli, "run", str(config)], env=env, capture_output=True, text=True, timeout=RERUN_TIMEOUT_S)
    assert again.returncode == 0
    assert again.stderr.count("up to date, skipped") == len(names)
