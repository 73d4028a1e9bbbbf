"""Driver for the kill-and-resume test: run the labeling chain for a config given as a YAML path."""

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
