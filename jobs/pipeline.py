"""Ray job entry point for the whole pipeline.

    ray job submit --working-dir . -- python jobs/pipeline.py --config configs/<file>.yaml [--until STAGE]

Inside a Ray job, `ray.init()` joins the job's cluster (RAY_ADDRESS is set by the job runtime), so
this is the same code path as `compeffdist run` on a laptop.
"""

from __future__ import annotations

import argparse
import sys

from compeffdist.cli import main

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--until")
    parser.add_argument("--only", nargs="+")
    parser.add_argument("--force", nargs="+", default=[])
    args = parser.parse_args()
    argv = ["run", args.config]
    if args.until:
        argv += ["--until", args.until]
    if args.only:
        argv += ["--only", *args.only]
    if args.force:
        argv += ["--force", *args.force]
    sys.exit(main(argv))
