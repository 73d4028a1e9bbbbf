"""Run the labeling chain (pool -> fixed templates -> records -> responses) for a config YAML path.

A plain process in the kill-and-resume test (test_labeling.py), and a `ray job submit` entrypoint in
test_ray_job.py: inside a Ray job, ensure_ray joins the job's cluster through RAY_ADDRESS.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from helpers import labeling_stages

from compeffdist.config import load_config
from compeffdist.pipeline import Runner
from compeffdist.raysession import ensure_ray

if __name__ == "__main__":
    config = load_config(sys.argv[1])
    ensure_ray(config.ray)
    Runner(config, labeling_stages()).run()
