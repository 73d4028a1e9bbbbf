"""Where a run writes, how it starts Ray, and how its GPU-hours are projected."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, field_validator

from compeffdist.config.base import StrictModel

DATA_ROOT_ENV = "COMPEFFDIST_DATA_ROOT"


class LeaseConfig(StrictModel):
    """The run's lease on its output_dir: one writer at a time, a dead writer's lease taken over."""

    heartbeat_s: float = Field(10.0, gt=0, description="Seconds between the running driver's lease refreshes.")
    stale_after_beats: int = Field(
        6,
        ge=2,
        description="A lease whose holder missed this many heartbeats is stale and taken over by the next run "
        "(at once when the holder was on this host and its process is gone).",
    )


class RunConfig(StrictModel):
    """Where a run keeps its artifacts, where SentiBench is, and the seed every stage starts from."""

    name: str = Field("local", description="The run's name in logs and the report.")
    output_dir: str = Field(
        "runs/local",
        description="Where artifacts go: a local folder, or a URI every node sees (s3://bucket/prefix, gs://...; "
        "pyarrow filesystem options as query parameters, e.g. ?endpoint_override=host:9000&scheme=http).",
    )
    data_root: Path = Field(
        Path("../shared/data/sentibench"),
        strict=False,  # a YAML string
        description=f"SentiBench folder; the {DATA_ROOT_ENV} environment variable overrides it.",
    )
    seed: int = Field(42, description="Seeds every stage; selection.seed and training.seed can vary those alone.")
    lease: LeaseConfig = Field(default_factory=LeaseConfig, description="One writer per output_dir.")

    @field_validator("data_root")
    @classmethod
    def _data_root_exists(cls, value: Path) -> Path:
        override = os.environ.get(DATA_ROOT_ENV)
        path = Path(override) if override else value
        if not path.is_dir():
            raise ValueError(
                f"data root {str(path)!r} is not a folder; fetch SentiBench with "
                f"`compeffdist data download sentibench --to DIR` and point run.data_root "
                f"(or ${DATA_ROOT_ENV}) at it"
            )
        return path


class RayConfig(StrictModel):
    """How the run starts or joins Ray; none of it changes a stage's output."""

    address: str | None = Field(None, description="None starts a local Ray; 'auto' joins a cluster.")
    num_cpus: int | None = Field(None, ge=1, description="CPUs for a local Ray (None: all).")
    num_gpus: int | None = Field(None, ge=0, description="GPUs for a local Ray (None: all it finds).")
    include_dashboard: bool = Field(False, description="Start Ray's dashboard with a local Ray.")
    verbose: bool = Field(
        False,
        description="Show Ray's own INFO lines in the console (Ray Data's execution plans and timings); off: "
        "one progress line per update and Ray's warnings and errors only.",
    )
    log_to_driver: bool = Field(
        True,
        description="Stream actor and worker logs to this terminal; false keeps them in Ray's session logs only "
        "(/tmp/ray/session_latest/logs): the console then shows the pipeline's own progress, and worker "
        "errors still surface as exceptions.",
    )


class AccountingConfig(StrictModel):
    """How token counts turn into a GPU-hour estimate for a GPU type you might run on."""

    gpu_type: str = Field(
        "H100-80GB", description="The GPU the cluster runs on; its memory (the 'NNGB' in the name) sizes the fit check."
    )
    gpu_memory_gb: float | None = Field(
        None, gt=0, description="Memory of one GPU; None: read from gpu_type (e.g. 'A100-40GB' -> 40)."
    )
    output_tokens_per_gpu_second: float = Field(
        400.0, gt=0, description="Teacher decode throughput per GPU on gpu_type (measure yours with bench/)."
    )
    prompt_tokens_per_gpu_second: float = Field(
        5000.0,
        gt=0,
        description="Forward-only (prefill) throughput per GPU, for stages that generate nothing (difficulty scoring).",
    )
    gpu_hour_usd: float | None = Field(None, ge=0, description="Price of a GPU-hour, for a cost line in the report.")
