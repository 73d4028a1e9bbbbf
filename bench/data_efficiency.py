"""The paper's data-efficiency experiment at a scale this machine runs: same student, five training sets.

Arms (METHOD.md §3.2): (a) all teacher-labeled records, (b) `--rate` chosen by the rank-based soft
sampler, (c) `--rate` at random, (d) `--rate` with the highest IFD (the Cherry-LLM baseline), and
the ablation (e): (b) with the rank score computed on the chat-templated text instead of the
official raw concatenation (docs/fidelity.md). The subsets are exact-size and stratified per
instruction template ("inprompt"), so every arm at the same rate trains on the same number of records.

How it runs: the chain up to teacher responses runs once (`shared/`); difficulty is scored once per
scoring (`metric-rank/`, `metric-rank-chat/`, `metric-ifd/`); each arm × seed then gets its own
output folder seeded with copies of those finished artifacts (their manifests stay valid, so only
selection, training and evaluation run there). Seeds vary the selection and training
(`selection.seed`, `training.seed`), not the shared data. The base student and the teacher are
evaluated once on the same examples.

    .venv/bin/python bench/data_efficiency.py [--config configs/local.yaml] [--records 320] [--rate 0.1]
        [--seeds 1 2 3] [--datasets ...] [--limit 30] [--out runs/data-efficiency] [--set KEY=VALUE ...]

`--set` overrides the config for every arm, e.g. `--set models.student.derive_layers=16` for a deeper
student (about twice the training time of the default 4 layers).

Writes bench/results/data_efficiency.{json,md}: F1 × 100 per arm as mean ± std over seeds, per dataset
and overall, and the number of training records per arm.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from statistics import mean, pstdev
from typing import Any

from common import REPO, write_results  # bench/ is on sys.path when a script here runs

from compeffdist.cli import parse_overrides

SHARED_UNTIL = "responses"
# Difficulty settings scored once each; every other difficulty setting is the config's (official by default).
SCORINGS: dict[str, dict[str, Any]] = {
    "rank": {"metric": "rank"},
    "rank-chat": {"metric": "rank", "chat_template": True},
    "ifd": {"metric": "ifd"},
}
ARMS: dict[str, dict[str, Any]] = {
    "all": {"scoring": "rank", "selection": {"method": "random", "rate": 1.0}},
    "soft-rank": {"scoring": "rank", "selection": {"method": "soft", "a": 1.0}},
    "soft-rank-chat": {"scoring": "rank-chat", "selection": {"method": "soft", "a": 1.0}},
    "random": {"scoring": "rank", "selection": {"method": "random"}},
    "ifd": {"scoring": "ifd", "selection": {"method": "hard"}},
}
# Small-budget evaluation subset: every task group (basic, multifaceted, fine-grained) is represented.
DEFAULT_DATASETS = ["sc/sst2", "sc/twitter", "multifaced/irony18", "multifaced/tweeteval", "absa/atsa_rest16"]


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] data-efficiency: {message}", flush=True)


def _seed_folder(source: Path, target: Path, stages: list[str]) -> None:
    """Copy finished stage artifacts into a new run folder (their manifests stay valid there)."""
    target.mkdir(parents=True, exist_ok=True)
    for stage in stages:
        if not (target / stage).exists():
            shutil.copytree(source / stage, target / stage)


def _run(config_path: Path, overrides: dict[str, Any], until: str | None = None) -> Any:
    from compeffdist.config import load_config
    from compeffdist.pipeline import Runner
    from compeffdist.raysession import ensure_ray

    config = load_config(config_path, overrides)
    ensure_ray(config.ray)
    runner = Runner(config)
    runner.run(until=until)
    return runner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "local.yaml")
    parser.add_argument("--records", type=int, default=320, help="teacher-labeled pool size")
    parser.add_argument("--rate", type=float, default=0.1)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--datasets", nargs="+", default=DEFAULT_DATASETS)
    parser.add_argument("--limit", type=int, default=30, help="SentiBench test examples per dataset")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "data-efficiency")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override for every arm")
    parser.add_argument("--no-reference", action="store_true", help="skip evaluating base student and teacher")
    args = parser.parse_args()

    out = args.out.resolve()
    evaluation = {"datasets": args.datasets, "limit": args.limit, "seeds": [42], "models": ["student"]}
    common: dict[str, Any] = {
        **parse_overrides(args.set),
        "labeling.records": args.records,
        "selection.scope": "inprompt",
        "selection.mode": "exact",
        "selection.rate": args.rate,
        "evaluation": evaluation,
    }
    started = time.time()
    _log(f"shared chain up to {SHARED_UNTIL} in {out / 'shared'}")
    shared = _run(args.config, {**common, "run.output_dir": str(out / "shared")}, until=SHARED_UNTIL)
    shared_stages = [s.name for s in shared.stages[: [s.name for s in shared.stages].index(SHARED_UNTIL) + 1]]

    for scoring in sorted({arm["scoring"] for arm in ARMS.values()}):
        folder = out / f"metric-{scoring}"
        _seed_folder(out / "shared", folder, shared_stages)
        _log(f"difficulty ({scoring}) in {folder}")
        _run(args.config, {**common, "run.output_dir": str(folder), **_difficulty(scoring)}, until="difficulty")

    rows: list[dict[str, Any]] = []
    for name, arm in ARMS.items():
        for seed in args.seeds:
            folder = out / f"{name}-seed{seed}"
            _seed_folder(out / f"metric-{arm['scoring']}", folder, [*shared_stages, "difficulty"])
            overrides = {
                **common, "run.output_dir": str(folder), **_difficulty(arm["scoring"]),
                "selection.seed": seed, "training.seed": seed,
                **{f"selection.{k}": v for k, v in arm["selection"].items()},
            }  # fmt: skip
            _log(f"arm {name}, seed {seed}")
            runner = _run(args.config, overrides)
            selected = runner.store.manifest("selection").counts.get("rows", 0)
            for row in runner.store.read_table("evaluation").to_pylist():
                # The evaluation row's own `seed` is the k-shot demo seed; the arm's seed must win.
                rows.append({**row, "eval_seed": row["seed"], "arm": name, "seed": seed, "records": selected})

    reference: list[dict[str, Any]] = []
    if not args.no_reference:
        reference = _reference_rows(args.config, common, out, evaluation)
    _report(rows, reference, args, time.time() - started)
    (out / "rows.json").write_text(json.dumps({"arms": rows, "reference": reference}, indent=2, default=str))


def _difficulty(scoring: str) -> dict[str, Any]:
    return {f"difficulty.{key}": value for key, value in SCORINGS[scoring].items()}


def _reference_rows(config_path: Path, common: dict[str, Any], out: Path, evaluation: dict[str, Any]) -> list[dict]:
    """The base student and the teacher on the same examples, for scale."""
    from compeffdist.config import EvaluationConfig, load_config
    from compeffdist.evaluation.runner import evaluate_models

    config = load_config(config_path, {**common, "run.output_dir": str(out / "shared")})
    models = {"base student": config.models.student, "teacher": config.models.teacher}
    _log("reference: base student and teacher")
    summary = evaluate_models(
        models, config.engines.evaluation, EvaluationConfig(**evaluation), config.run.data_root, out / "reference"
    )
    return [
        {"arm": label, "dataset": key, "f1": entry["f1"] / 100}
        for label, result in summary.items()
        for key, entry in result["datasets"].items()
    ]


def _span(values: list[int]) -> str:
    """'30' or '30–31': exact-size stratified subsets can differ by one record per template."""
    if not values:
        return "–"
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}–{high}"


def _report(rows: list[dict[str, Any]], reference: list[dict[str, Any]], args: argparse.Namespace, seconds: float):
    """Mean ± std over seeds per arm: overall (unweighted mean over datasets) and per dataset."""
    table: list[dict[str, Any]] = []
    for arm in [*ARMS, *dict.fromkeys(r["arm"] for r in reference)]:
        arm_rows = [r for r in rows if r["arm"] == arm] or [r for r in reference if r["arm"] == arm]
        seeds = sorted({r.get("seed") for r in arm_rows if r.get("seed") is not None})
        per_seed_overall = [100 * mean(r["f1"] for r in arm_rows if r.get("seed") == seed) for seed in seeds] or [
            100 * mean(r["f1"] for r in arm_rows)
        ]
        entry: dict[str, Any] = {
            "arm": arm,
            "records": _span([r["records"] for r in arm_rows if "records" in r]),
            "seeds": len(seeds) or "–",
            "overall": f"{mean(per_seed_overall):.1f} ± {pstdev(per_seed_overall):.1f}",
        }
        for key in args.datasets:
            values = [100 * r["f1"] for r in arm_rows if r["dataset"] == key]
            entry[key] = f"{mean(values):.1f} ± {pstdev(values):.1f}" if values else "–"
        table.append(entry)
    columns = [("arm", "arm"), ("records", "train records"), ("seeds", "seeds"), ("overall", "overall F1")]
    columns += [(key, key.split("/")[-1]) for key in args.datasets]
    context = {
        "config": str(args.config.relative_to(REPO) if args.config.is_relative_to(REPO) else args.config),
        "pool_records": args.records, "rate": args.rate, "seeds": args.seeds, "limit": args.limit,
        "eval_seed": 42, "minutes": round(seconds / 60, 1),
    }  # fmt: skip
    write_results("data_efficiency", table, columns, context)


if __name__ == "__main__":
    main()
