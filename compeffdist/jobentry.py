"""Shared body of the `jobs/*.py` scripts that `ray job submit` runs: one stage, or the whole pipeline."""

from __future__ import annotations

import argparse

from compeffdist.cli import main as cli_main


def run_job(stage: str | None, description: str) -> int:
    """Parse `--config` (and, for the pipeline, --until/--only/--force) and run through the CLI.

    A single-stage job runs only its stage: its inputs must already be published under
    run.output_dir (shared storage on a cluster), so stages can be submitted one by one.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", required=True, help="job config YAML (paths relative to it)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="override a config value, e.g. --set run.output_dir=s3://bucket/run1 (repeatable)",
    )  # fmt: skip
    if stage is None:
        parser.add_argument("--until")
        parser.add_argument("--only", nargs="+")
        parser.add_argument("--force", nargs="+", default=[])
    else:
        parser.add_argument("--force", action="store_true", help="re-run the stage even if up to date")
    args = parser.parse_args()
    argv = ["run", args.config, *(f"--set={pair}" for pair in args.set)]
    if stage is not None:
        argv += ["--only", stage]
        if args.force:
            argv += ["--force", stage]
    else:
        if args.until:
            argv += ["--until", args.until]
        if args.only:
            argv += ["--only", *args.only]
        if args.force:
            argv += ["--force", *args.force]
    return cli_main(argv)
