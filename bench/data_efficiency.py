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
evaluated once on the same examples and held-out records (`reference/`). Re-running the same
command resumes: finished stages and the reference are reused.

Measures, per arm (evaluation/comparison.py, arms.py): SentiBench overall F1 on `--datasets`
(`--limit` examples each), NLL per token of the teacher's answers on the held-out records (`--heldout`
of the pool, never trained on by any arm) and label agreement with the teacher on the held-out
classification records; each the mean over seeds with a 95% bootstrap interval that resamples test
items and seeds. Differences between arms are paired on the items; a difference is significant when
its interval excludes zero.

    .venv/bin/python bench/data_efficiency.py [--config configs/local.yaml] [--records 200] [--rate 0.1]
        [--heldout 0.2] [--seeds 1 2 3] [--datasets ...] [--limit 16] [--out runs/data-efficiency]
        [--set KEY=VALUE ...]

Writes bench/results/data_efficiency.{json,md} (per arm) and data_efficiency_differences.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from common import REPO, chain_overrides, chain_parser, logger, run_pipeline, seed_folder, stages_until, write_results

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
REFERENCE = {"base student": "base_student", "teacher": "teacher"}  # report label -> evaluation model
# The comparisons the experiment is about (first − second); every other pair is in the JSON.
PAIRS = [
    ("soft-rank", "random"), ("soft-rank", "ifd"), ("soft-rank", "all"), ("soft-rank", "soft-rank-chat"),
    ("random", "ifd"), ("all", "random"), ("soft-rank", "base student"), ("all", "base student"),
]  # fmt: skip
_log = logger("data-efficiency")


def main() -> None:
    parser = chain_parser(__doc__, "data-efficiency", records=200, heldout=0.2, limit=16)
    parser.add_argument("--rate", type=float, default=0.1)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    args = parser.parse_args()

    out = args.out.resolve()
    common: dict[str, Any] = {
        **chain_overrides(args),
        "selection.scope": "inprompt",
        "selection.mode": "exact",
        "selection.rate": args.rate,
        "evaluation.seeds": [42],
        "evaluation.models": ["student"],
    }
    started = time.time()
    _log(f"shared chain up to {SHARED_UNTIL} in {out / 'shared'}")
    shared = run_pipeline(args.config, {**common, "run.output_dir": str(out / "shared")}, until=SHARED_UNTIL)
    shared_stages = stages_until(shared, SHARED_UNTIL)

    arms = {name: ARMS[name] for name in args.arms}
    for scoring in sorted({arm["scoring"] for arm in arms.values()}):
        folder = out / f"metric-{scoring}"
        seed_folder(out / "shared", folder, shared_stages)
        _log(f"difficulty ({scoring}) in {folder}")
        run_pipeline(args.config, {**common, "run.output_dir": str(folder), **_difficulty(scoring)}, until="difficulty")

    rows: list[dict[str, Any]] = []
    heldout: list[pa.Table] = []
    records: dict[str, list[int]] = {}
    for name, arm in arms.items():
        for seed in args.seeds:
            folder = out / f"{name}-seed{seed}"
            seed_folder(out / f"metric-{arm['scoring']}", folder, [*shared_stages, "difficulty"])
            overrides = {
                **common, "run.output_dir": str(folder), **_difficulty(arm["scoring"]),
                "selection.seed": seed, "training.seed": seed,
                **{f"selection.{k}": v for k, v in arm["selection"].items()},
            }  # fmt: skip
            _log(f"arm {name}, seed {seed}")
            runner = run_pipeline(args.config, overrides)
            records.setdefault(name, []).append(runner.store.manifest("selection").counts.get("rows", 0))
            label = f"{name}|{seed}"
            rows += [{**r, "model": label} for r in runner.store.read_table("evaluation").to_pylist()]
            table = pq.read_table(runner.store.files_dir("evaluation") / "heldout_agreement.parquet")
            heldout.append(_relabel(table, label))

    reference_rows, reference_heldout = _reference(args.config, {**common, "run.output_dir": str(out / "shared")}, out)
    rows += reference_rows
    heldout.append(reference_heldout)
    (out / "rows.json").write_text(json.dumps(rows, default=str))
    pq.write_table(pa.concat_tables(heldout), out / "heldout.parquet")
    _report(rows, pa.concat_tables(heldout), records, args, time.time() - started)


def _difficulty(scoring: str) -> dict[str, Any]:
    return {f"difficulty.{key}": value for key, value in SCORINGS[scoring].items()}


def _relabel(table: pa.Table, label: str) -> pa.Table:
    index = table.schema.get_field_index("model")
    return table.set_column(index, "model", pa.array([label] * table.num_rows, pa.string()))


def _reference(config_path: Path, overrides: dict[str, Any], out: Path) -> tuple[list[dict[str, Any]], pa.Table]:
    """The base student and the teacher on the same examples and held-out records (cached in `reference/`)."""
    from compeffdist.config import load_config
    from compeffdist.evaluation.stages import STAGES, evaluate_on_ray
    from compeffdist.pipeline import Runner

    config = load_config(config_path, overrides)
    runner = Runner(config)
    key = {
        "config": config.section_hash(STAGES[0].sections),
        "responses": runner.store.manifest("responses").fingerprint,
    }
    folder = out / "reference"
    if (folder / "key.json").is_file() and json.loads((folder / "key.json").read_text()) == key:
        _log("reference: up to date, reused")
        return json.loads((folder / "rows.json").read_text()), pq.read_table(folder / "heldout.parquet")
    models = {label: getattr(config.models, "student" if m == "base_student" else m) for label, m in REFERENCE.items()}
    parts = [str(p) for p in runner.store.parts("responses")]
    rows, heldout, _ = evaluate_on_ray(config, models, parts, _log)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rows.json").write_text(json.dumps(rows, default=str))
    pq.write_table(heldout, folder / "heldout.parquet")
    (folder / "key.json").write_text(json.dumps(key))
    return rows, heldout


def _span(values: list[int]) -> str:
    """'30' or '30–31': exact-size stratified subsets can differ by one record per template."""
    if not values:
        return "–"
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}–{high}"


def _report(
    rows: list[dict[str, Any]], heldout: pa.Table, records: dict[str, list[int]], args: argparse.Namespace,
    seconds: float,
) -> None:  # fmt: skip
    """Per arm: every measure with its interval over items and seeds; then the differences between arms."""
    from compeffdist.evaluation.arms import combine_seeds, differences, seed_spread
    from compeffdist.evaluation.comparison import f1_measures, heldout_measures

    confidence = 0.95
    groups = {arm: [f"{arm}|{seed}" for seed in args.seeds] for arm in records}
    groups.update({label: [label] for label in REFERENCE})
    f1 = f1_measures(rows)
    held = heldout_measures(heldout, resamples=len(rows[0]["f1_replicates"]))
    measures = {
        "f1": combine_seeds({m: v["overall"] for m, v in f1.items()}, groups),
        "nll": combine_seeds(held.nll, groups),
        "agreement": combine_seeds(held.agreement, groups),
    }
    table = []
    for arm, models in groups.items():
        entry: dict[str, Any] = {
            "arm": arm, "records": _span(records.get(arm, [])), "seeds": len(models) if arm in records else "–",
        }  # fmt: skip
        for name, digits in (("f1", 1), ("nll", 3), ("agreement", 1)):
            if arm in measures[name]:
                spread = seed_spread(_per_model(name, f1, held), models)
                sd = f" (seed sd {spread:.{digits}f})" if arm in records and len(models) > 1 else ""
                entry[name] = measures[name][arm].interval(confidence).format(digits) + sd
        for key in args.datasets:
            values = [f1[m][key].estimate for m in models if m in f1 and key in f1[m]]
            entry[key] = f"{sum(values) / len(values):.1f}" if values else "–"
        table.append(entry)
    columns = [("arm", "arm"), ("records", "train records"), ("seeds", "seeds"), ("f1", "overall F1 [95% CI]"),
               ("nll", "held-out NLL/token [95% CI]"), ("agreement", "label agreement % [95% CI]")]  # fmt: skip
    columns += [(key, key.split("/")[-1]) for key in args.datasets]
    context = {
        "config": str(args.config.relative_to(REPO) if args.config.is_relative_to(REPO) else args.config),
        "pool_records": args.records, "rate": args.rate, "heldout": args.heldout, "heldout_records": held.records,
        "labeled_heldout": held.labeled, "seeds": args.seeds, "limit": args.limit, "eval_seed": 42,
        "minutes": round(seconds / 60, 1),
    }  # fmt: skip
    write_results("data_efficiency", table, columns, context)

    diffs = []
    for first, second in PAIRS:
        if first not in groups or second not in groups:
            continue
        entry = {"comparison": f"{first} − {second}"}
        for name, digits in (("f1", 1), ("nll", 3), ("agreement", 1)):
            found = differences(measures[name], confidence, [(first, second)])
            if found:
                mark = " **significant**" if found[0].significant else ""
                entry[name] = found[0].interval.format(digits, signed=True) + mark
        diffs.append(entry)
    columns = [("comparison", "comparison (first − second)"), ("f1", "Δ overall F1 [95% CI]"),
               ("nll", "Δ held-out NLL/token [95% CI]"), ("agreement", "Δ label agreement [95% CI]")]  # fmt: skip
    write_results("data_efficiency_differences", diffs, columns, context)


def _per_model(name: str, f1: dict[str, Any], held: Any) -> dict[str, Any]:
    return {"f1": {m: v["overall"] for m, v in f1.items()}, "nll": held.nll, "agreement": held.agreement}[name]


if __name__ == "__main__":
    main()
