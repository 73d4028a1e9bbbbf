"""`compeffdist` command line: validate, doctor, run, status, evaluate, data download.

Exit codes: 0 done; 2 a bad config, argument or preflight problem (nothing ran); 3 the output is in
use by another run, or this run lost its lease (nothing published); 4 a stage failed on its input
(its rejects are kept under `<output_dir>/_failed/<stage>/`).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from compeffdist.config import ConfigError, JobConfig, load_config
from compeffdist.redact import install_excepthook, redact_data, redact_text

if TYPE_CHECKING:
    from compeffdist.pipeline import Runner
    from compeffdist.preflight import Finding

EXIT_CONFIG = 2
EXIT_BUSY = 3
EXIT_STAGE_FAILED = 4
OVERLAY_HELP = "a YAML file merged over the config, e.g. configs/training/gpu-40gb.yaml (repeatable; --set wins)"
SET_HELP = "override a config value, e.g. --set run.output_dir=s3://bucket/run1 (repeatable)"


def parse_overrides(pairs: list[str] | None) -> dict[str, object]:
    """`--set section.key=value` pairs; values are YAML (numbers, booleans, lists, null)."""
    overrides: dict[str, object] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE, e.g. run.output_dir=s3://bucket/run1")
        try:
            overrides[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {pair!r}: value is not valid YAML: {exc}") from exc
    return overrides


def _load(path: str, pairs: list[str] | None = None, overlays: list[str] | None = None) -> JobConfig:
    try:
        return load_config(path, parse_overrides(pairs), overlays)
    except ConfigError as exc:
        print(f"error: {redact_text(str(exc))}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from exc


def _report_problems(findings: list[Finding], heading: str) -> int:
    """Print preflight problems (one per line, field first); EXIT_CONFIG if there are any, else 0."""
    from compeffdist.preflight import problems

    found = problems(findings)
    if not found:
        return 0
    print(f"error: {heading}: {len(found)} problem(s)", file=sys.stderr)
    for finding in found:
        print(f"  {finding}", file=sys.stderr)
    return EXIT_CONFIG


def cmd_validate(args: argparse.Namespace) -> int:
    config = _load(args.config, args.set, args.overlay)
    print(yaml.safe_dump(redact_data(config.model_dump(mode="json")), sort_keys=False), end="")
    if args.check:
        from compeffdist.preflight import preflight

        code = _report_problems(preflight(config, with_lease=True), f"{args.config}: preflight")
        if code:
            return code
    print(f"# {args.config}: valid{' (models, output and lease checked)' if args.check else ''}", file=sys.stderr)
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Every preflight check, passed or not, one line each."""
    from compeffdist.pipeline import all_stages
    from compeffdist.preflight import check_stage_names, preflight

    config = _load(args.config, args.set, args.overlay)
    names = [stage.name for stage in all_stages(config)]
    findings = check_stage_names(names, args.until, args.only, args.force) + preflight(config, with_lease=True)
    for finding in findings:
        print(f"{'ok' if finding.ok else 'PROBLEM':<8} {finding}")
    return _report_problems(findings, f"{args.config}: doctor")


def _summary_table(config: JobConfig, own_run: str | None = None) -> str:
    """Each stage's state, rows, rejects, wall time and tokens; a lease held by another run (not `own_run`) first."""
    from compeffdist.lease import read_lease
    from compeffdist.partial import work_progress
    from compeffdist.pipeline import Runner

    runner = Runner(config)
    header = f"{'stage':<18} {'state':<8} {'rows':>8} {'rejects':>8} {'wall s':>8} {'tokens in/out':>16}  note"
    holder = read_lease(runner.store.root)
    lines = []
    if holder is not None and holder.run_id != own_run:
        stale = holder.stale_reason()
        who = f"held by a dead run: {holder.describe()} ({stale})" if stale else f"in use by {holder.describe()}"
        lines.append(f"output {who}")
    lines += [header, "-" * len(header)]
    for stage in runner.stages:
        state = runner.state(stage)
        manifest = state.manifest
        rows = rejects = wall = tokens = ""
        if manifest is not None:
            rows = str(manifest.counts.get("rows", ""))
            rejects = str(manifest.counts.get("rejects", 0))
            wall = f"{manifest.wall_time_s:.1f}"
            if manifest.token_usage:
                totals = manifest.token_totals()
                tokens = f"{totals['prompt_tokens']}/{totals['output_tokens']}"
        shown, note = state.state, ("" if state.state == "done" else state.reason)
        progress = None
        if state.state != "done":
            progress = work_progress(runner.store, stage.name, runner.expected_key(stage))
        if progress is not None:
            shown, note = "partial", progress.describe()
        lines.append(f"{stage.name:<18} {shown:<8} {rows:>8} {rejects:>8} {wall:>8} {tokens:>16}  {note}")
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace) -> int:
    config = _load(args.config, args.set, args.overlay)
    try:
        print(_summary_table(config))
    except OSError as exc:  # an unreachable bucket or unreadable folder: say so, no traceback
        print(f"error: cannot read {config.run.output_dir}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return 0


def _preflight_run(config: JobConfig, args: argparse.Namespace) -> int:
    """Stage names, then (unless --no-preflight) models and output: all before the lease and Ray."""
    from compeffdist.pipeline import all_stages
    from compeffdist.preflight import check_stage_names, preflight

    names = [stage.name for stage in all_stages(config)]
    findings = check_stage_names(names, args.until, args.only, args.force)
    if not findings and not args.no_preflight:
        findings = preflight(config)
    return _report_problems(findings, f"{args.config}: cannot run")


def cmd_run(args: argparse.Namespace) -> int:
    from compeffdist.failures import StageFailed
    from compeffdist.lease import LeaseLost, OutputBusy
    from compeffdist.nodecheck import NodeCheckError
    from compeffdist.pipeline import Runner
    from compeffdist.preflight import check_only_inputs

    config = _load(args.config, args.set, args.overlay)
    code = _preflight_run(config, args)
    if code:
        return code
    runner = Runner(config)
    code = _report_problems(check_only_inputs(runner.stages, args.only, runner.store), f"{args.config}: cannot run")
    if code:
        return code
    try:
        with runner.holding_output():
            _run_stages(runner, args)
    except OutputBusy as exc:
        print(f"error: run.output_dir {exc}", file=sys.stderr)
        return EXIT_BUSY
    except LeaseLost as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BUSY
    except StageFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_STAGE_FAILED
    except NodeCheckError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return 0


def _run_stages(runner: Runner, args: argparse.Namespace) -> None:
    """Start Ray, run the selected stages, and always print the summary and write the report."""
    from compeffdist.accounting import write_accounting
    from compeffdist.raysession import ensure_ray, joins_cluster
    from compeffdist.report import write_report

    config = runner.config
    selected = runner.select(args.until, args.only)
    print(redact_text(f"run {config.run.name}: {len(selected)} stage(s) -> {config.run.output_dir}"), file=sys.stderr)
    ensure_ray(config.ray)
    if joins_cluster(config.ray) and not args.no_preflight:
        from compeffdist.nodecheck import check_nodes

        # Seconds per node type, instead of a missing package or GPU surfacing hours in at the stage that needs it.
        check_nodes(config, [s.name for s in selected], log=lambda line: print(line, file=sys.stderr))
    try:
        runner.run(until=args.until, only=args.only, force=args.force)
    finally:
        print(_summary_table(config, own_run=runner.lease.run_id if runner.lease else None))
        names = [s.name for s in runner.stages]
        accounting = write_accounting(config, runner.store, names)
        report = write_report(runner.store, names, accounting, config.run.name)
        totals, projection = accounting["totals"], accounting["projection"]
        print(
            f"tokens: {totals['prompt_tokens']} prompt / {totals['output_tokens']} output in "
            f"{totals['requests']} requests; {totals['actor_seconds']:.0f} actor-s; "
            f"~{projection['gpu_hours']:.3f} GPU-h projected on {projection['gpu_type']}\n"
            f"report: {redact_text(str(report))}"
        )


def _labelled_models(values: list[str]) -> dict[str, str]:
    """`--model PATH` or `--model LABEL=PATH`; unlabelled models are named after their folder."""
    models: dict[str, str] = {}
    for value in values:
        label, sep, path = value.partition("=")
        if not sep:
            label, path = Path(value.rstrip("/")).name or value, value
        if label in models:
            raise ValueError(f"two models are labelled {label!r}: name them with LABEL=PATH")
        models[label] = path
    return models


def cmd_evaluate(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from compeffdist.config import EngineConfig, EvaluationConfig, ModelSpec
    from compeffdist.evaluation.report import RESULTS_MD
    from compeffdist.evaluation.runner import evaluate_models

    overrides: dict[str, object] = {
        "seeds": args.seeds, "k_shot": args.k_shot, "zero_shot": args.zero_shot, "chat_template": args.chat_template,
    }  # fmt: skip
    if args.datasets:
        overrides["datasets"] = args.datasets
    if args.limit is not None:  # 0 is an error, not "all"
        overrides["limit"] = args.limit
    try:
        models = _labelled_models(args.model)
        evaluation = EvaluationConfig(**overrides)
        engine = EngineConfig(
            backend=args.backend, max_model_len=args.max_model_len, resources={"batch_size": args.batch_size}
        )
    except ValidationError as exc:
        for item in exc.errors():
            names = [part for part in item["loc"] if isinstance(part, str)]  # resources.batch_size -> --batch-size
            flag = "--" + names[-1].replace("_", "-") if names else "<arguments>"
            print(f"error: {flag} {item['input']!r}: {item['msg'].removeprefix('Value error, ')}", file=sys.stderr)
        return EXIT_CONFIG
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    data_root = Path(os.environ.get("COMPEFFDIST_DATA_ROOT", args.data_root))
    if not data_root.is_dir():
        print(f"error: data root {data_root} is not a folder (use --data-root)", file=sys.stderr)
        return EXIT_CONFIG
    specs = {label: ModelSpec(name=path) for label, path in models.items()}
    summary = evaluate_models(specs, engine, evaluation, data_root, Path(args.out))
    for label, result in summary.items():
        print(f"{label}: overall {result['overall']:.2f}")
    print(f"tables: {Path(args.out) / RESULTS_MD}")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from compeffdist.data.sentibench import download_sentibench

    found = download_sentibench(Path(args.to), archive=Path(args.from_zip) if args.from_zip else None)
    print(f"SentiBench: {len(found)} datasets in {args.to}")
    return 0


def cmd_config_reference(args: argparse.Namespace) -> int:
    from compeffdist.config_reference import render

    text = render(JobConfig)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        print(text, end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="compeffdist", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="validate a job config and print it resolved")
    p.add_argument("config")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help=SET_HELP)
    p.add_argument("--overlay", action="append", metavar="FILE", help=OVERLAY_HELP)
    p.add_argument(
        "--check", action="store_true", help="also check live that models resolve, output_dir is writable and free"
    )
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("doctor", help="check, in seconds, what a run needs: models, output_dir, stage names")
    p.add_argument("config")
    p.add_argument("--until", help="check this stage name too")
    p.add_argument("--only", nargs="+", help="check these stage names too")
    p.add_argument("--force", nargs="+", default=[], help="check these stage names too")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help=SET_HELP)
    p.add_argument("--overlay", action="append", metavar="FILE", help=OVERLAY_HELP)
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("run", help="run the pipeline (skips up-to-date stages, resumes interrupted ones)")
    p.add_argument("config")
    p.add_argument("--until", help="run stages up to and including this one")
    p.add_argument("--only", nargs="+", help="run only these stages (their inputs must exist)")
    p.add_argument("--force", nargs="+", default=[], help="re-run these stages even if up to date")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help=SET_HELP)
    p.add_argument("--overlay", action="append", metavar="FILE", help=OVERLAY_HELP)
    p.add_argument(
        "--no-preflight",
        action="store_true",
        help="skip the model and output checks before the run (stage names are always checked), e.g. when "
        "only the worker nodes can see the models",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("status", help="each stage: done / stale / missing, rows, wall time")
    p.add_argument("config")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help=SET_HELP)
    p.add_argument("--overlay", action="append", metavar="FILE", help=OVERLAY_HELP)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("config-reference", help="every config field with its type, default and description (markdown)")
    p.add_argument("--out", help="write it to this file (docs/config.md) instead of printing it")
    p.set_defaults(func=cmd_config_reference)

    p = sub.add_parser("evaluate", help="evaluate one or more models on SentiBench, side by side")
    p.add_argument("--model", required=True, action="append", help="HF folder or hub id, or LABEL=PATH; repeatable")
    p.add_argument("--datasets", nargs="+", help="dataset keys such as sc/imdb (default: all 12)")
    p.add_argument("--limit", type=int, help="test examples per dataset, at least 1 (default: all)")
    p.add_argument("--seeds", type=int, nargs="+", default=[42, 52, 62])
    p.add_argument("--k-shot", type=int, default=4)
    p.add_argument("--zero-shot", action="store_true", help="no demos (beyond the paper)")
    p.add_argument("--chat-template", action="store_true", help="wrap prompts in the model's chat template")
    p.add_argument("--backend", choices=["transformers", "vllm"], default="transformers")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-model-len", type=int, default=4096)
    p.add_argument("--data-root", default="../shared/data/sentibench", help="SentiBench folder")
    p.add_argument("--out", required=True, help="folder for results.json, evaluation.md, evaluation.png")
    p.set_defaults(func=cmd_evaluate)

    data = sub.add_parser("data", help="data sets").add_subparsers(dest="data_command", required=True)
    dl = data.add_parser("download", help="fetch a data set").add_subparsers(dest="dataset", required=True)
    p = dl.add_parser("sentibench", help="the 12 SentiBench datasets from their public repository")
    p.add_argument("--to", required=True)
    p.add_argument("--from-zip", help="use a downloaded repository zip instead of the network")
    p.set_defaults(func=cmd_download)
    return parser


def main(argv: list[str] | None = None) -> int:
    install_excepthook()
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
