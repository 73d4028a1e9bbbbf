"""Accounting sums manifests and projects GPU-hours from the configured throughput."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from compeffdist.accounting import write_accounting
from compeffdist.artifacts import ArtifactStore, Manifest
from compeffdist.config import JobConfig

pytestmark = pytest.mark.unit


def test_accounting_totals_and_projection(tmp_path, data_root):
    config = JobConfig.model_validate(
        {
            "run": {"output_dir": str(tmp_path), "data_root": str(data_root)},
            "models": {"teacher": {"name": "t"}, "student": {"name": "s"}},
            "accounting": {
                "gpu_type": "A100",
                "output_tokens_per_gpu_second": 100.0,
                "prompt_tokens_per_gpu_second": 1000.0,
                "gpu_hour_usd": 2.0,
            },
        }
    )
    store = ArtifactStore(tmp_path)
    usage = {"t": {"prompt_tokens": 1000, "output_tokens": 720_000, "requests": 10}}
    extra = {"actor_seconds": 7200.0, "gpu_hours": 8.0}
    store.commit(Manifest("responses", "h", {}, 1, token_usage=usage, extra=extra), pa.table({"x": [1]}))
    scoring = {"s": {"prompt_tokens": 3_600_000, "output_tokens": 0, "requests": 10}}  # forward-only
    store.commit(Manifest("difficulty", "h", {}, 1, token_usage=scoring), pa.table({"x": [1]}))
    store.commit(Manifest("pool", "h", {}, 1), pa.table({"x": [1]}))
    report = write_accounting(config, store, ["pool", "responses", "difficulty", "never_ran"])
    assert report["totals"]["output_tokens"] == 720_000 and report["totals"]["gpu_hours"] == 8.0
    # responses: 720k output tokens at 100/s = 2 h (its 1000 prompt tokens are folded into the decode rate);
    # difficulty: 3.6M prompt tokens at 1000/s = 1 h.
    assert report["stages"]["responses"]["projected_gpu_hours"] == 2.0
    assert report["stages"]["difficulty"]["projected_gpu_hours"] == 1.0
    assert report["projection"] == {
        "gpu_type": "A100", "assumed_output_tokens_per_gpu_second": 100.0,
        "assumed_prompt_tokens_per_gpu_second": 1000.0, "gpu_hours": 3.0, "usd": 6.0,
    }  # fmt: skip
    assert set(report["stages"]) == {"pool", "responses", "difficulty"}
    assert json.loads((tmp_path / "accounting.json").read_text())["run"] == "local"
