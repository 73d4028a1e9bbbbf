"""Which local student learns from its teacher: several student derivations (and recipes) on one shared chain.

The chain up to teacher responses runs once (`shared/`); each candidate then runs difficulty (scored by
that student), selection, training and evaluation in its own folder seeded with copies of the shared
artifacts. Every candidate is measured on the same held-out teacher-labeled records (never trained
on) and the same SentiBench examples, base (untrained cut) against trained:

- NLL per token of the teacher's answers on the held-out records, and label agreement with the teacher;
- SentiBench overall F1 on `--datasets` (`--limit` examples each);
each difference trained − base with its paired 95% bootstrap interval, and the training wall time.

    .venv/bin/python bench/student_choice.py [--config configs/local.yaml] [--records 320] [--heldout 0.25]
        [--candidates first-4 spread-8 ...] [--datasets ...] [--limit 30] [--out runs/student-choice]
        [--set KEY=VALUE ...]

Writes bench/results/student_choice.{json,md}. Re-running resumes: finished stages are skipped.
"""

from __future__ import annotations

import json
from typing import Any

from common import chain_overrides, chain_parser, logger, run_pipeline, seed_folder, stages_until, write_results

from compeffdist.evaluation.bootstrap import Interval

SHARED_UNTIL = "responses"
STUDENT = "models.student"
CANDIDATES: dict[str, dict[str, Any]] = {
    "first-4": {f"{STUDENT}.derive_layers": 4, f"{STUDENT}.derive_layer_choice": "first"},
    "first-8": {f"{STUDENT}.derive_layers": 8, f"{STUDENT}.derive_layer_choice": "first"},
    "spread-8": {f"{STUDENT}.derive_layers": 8, f"{STUDENT}.derive_layer_choice": "spread"},
    "ends-8": {f"{STUDENT}.derive_layers": 8, f"{STUDENT}.derive_layer_choice": "ends"},
    "spread-12": {f"{STUDENT}.derive_layers": 12, f"{STUDENT}.derive_layer_choice": "spread"},
    "spread-8-lr3e-4-ep4": {
        f"{STUDENT}.derive_layers": 8,
        f"{STUDENT}.derive_layer_choice": "spread",
        "training.learning_rate": 3.0e-4,
        "training.epochs": 4,
        "training.warmup_steps": 5,
    },
    "spread-16-lr3e-4-ep4": {
        f"{STUDENT}.derive_layers": 16,
        f"{STUDENT}.derive_layer_choice": "spread",
        "training.learning_rate": 3.0e-4,
        "training.epochs": 4,
        "training.warmup_steps": 5,
    },
}
_log = logger("student-choice")


def main() -> None:
    parser = chain_parser(__doc__, "student-choice", records=320, heldout=0.25, limit=30)
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    args = parser.parse_args()

    out = args.out.resolve()
    common: dict[str, Any] = {**chain_overrides(args), "evaluation.models": ["student", "base_student"]}
    _log(f"shared chain up to {SHARED_UNTIL} in {out / 'shared'}")
    shared = run_pipeline(args.config, {**common, "run.output_dir": str(out / "shared")}, until=SHARED_UNTIL)
    shared_stages = stages_until(shared, SHARED_UNTIL)

    rows = []
    for name in args.candidates:
        folder = out / name
        seed_folder(out / "shared", folder, shared_stages)
        _log(f"candidate {name}: {CANDIDATES[name]}")
        runner = run_pipeline(args.config, {**common, **CANDIDATES[name], "run.output_dir": str(folder)})
        rows.append(_row(name, runner))
        _log(f"candidate {name}: {rows[-1]}")
    columns = [
        ("candidate", "candidate"), ("train_records", "train records"), ("train_s", "training s"),
        ("steps", "steps"), ("final_loss", "final loss"),
        ("nll_base", "NLL base"), ("nll_trained", "NLL trained"), ("nll_diff", "NLL trained − base [95% CI]"),
        ("agree_base", "agreement % base"), ("agree_trained", "agreement % trained"),
        ("agree_diff", "agreement trained − base [95% CI]"), ("f1_base", "F1 base"), ("f1_trained", "F1 trained"),
        ("f1_diff", "F1 trained − base [95% CI]"),
    ]  # fmt: skip
    context = {"records": args.records, "heldout": args.heldout, "datasets": len(args.datasets), "limit": args.limit}
    write_results("student_choice", rows, columns, context)


def _row(name: str, runner: Any) -> dict[str, Any]:
    """One candidate's figures from its evaluation comparison.json and its training manifest."""
    comparison = json.loads((runner.store.files_dir("evaluation") / "comparison.json").read_text())
    training = runner.store.manifest("training")
    selection = runner.store.manifest("selection")
    heldout, diffs = comparison["heldout"], comparison["student_minus_base"]

    def fmt(entry: dict[str, float] | None, digits: int = 1, signed: bool = False) -> str:
        return "–" if entry is None else Interval(entry["estimate"], entry["low"], entry["high"]).format(digits, signed)

    f1 = comparison["f1"]
    return {
        "candidate": name,
        "train_records": selection.counts.get("selected"),
        "train_s": round(training.wall_time_s),
        "steps": training.counts.get("steps"),
        "final_loss": round(training.extra.get("final_loss", float("nan")), 3),
        "heldout_records": heldout["records"],
        "labeled_records": heldout["labeled"],
        "nll_base": fmt(heldout["nll"].get("base_student"), 3),
        "nll_trained": fmt(heldout["nll"].get("student"), 3),
        "nll_diff": fmt(diffs.get("nll"), 3, signed=True),
        "agree_base": fmt(heldout["label_agreement"].get("base_student")),
        "agree_trained": fmt(heldout["label_agreement"].get("student")),
        "agree_diff": fmt(diffs.get("label_agreement"), signed=True),
        "f1_base": fmt(f1.get("base_student", {}).get("overall")),
        "f1_trained": fmt(f1.get("student", {}).get("overall")),
        "f1_diff": fmt(diffs.get("overall_f1"), signed=True),
    }


if __name__ == "__main__":
    main()
