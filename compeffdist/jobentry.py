"""What `jobs/pipeline.py` and `jobs/stage.py` share: parse a job's arguments and run them through the CLI."""

from __future__ import annotations

import argparse

from compeffdist.cli import OVERLAY_HELP, SET_HELP
from compeffdist.cli import main as cli_main


def run_job(description: str, single_stage: bool) -> int:
    """Parse `--config` (plus `--stage` for one stage, or --until/--only/--force for the pipeline) and run."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="job config YAML (paths relative to it)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=SET_HELP)
    parser.add_argument("--overlay", action="append", default=[], metavar="FILE", help=OVERLAY_HELP)
    if single_stage:
        parser.add_argument("--stage", required=True, help="the stage to run (`compeffdist status` lists them)")
        parser.add_argument("--force", action="store_true", help="re-run the stage even if up to date")
    else:
        parser.add_argument("--until")
        parser.add_argument("--only", nargs="+")
        parser.add_argument("--force", nargs="+", default=[])
    args = parser.parse_args()
    argv = ["run", args.config, *(f"--set={pair}" for pair in args.set), *(f"--overlay={f}" for f in args.overlay)]
    if single_stage:
        argv += ["--only", args.stage, *(["--force", args.stage] if args.force else [])]
    else:
        argv += ["--until", args.until] if args.until else []
        argv += ["--only", *args.only] if args.only else []
        argv += ["--force", *args.force] if args.force else []
    return cli_main(argv)
