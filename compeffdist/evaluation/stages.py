"""Stage `evaluation`: the fine-tuned student, the base student (and optionally the teacher) on SentiBench."""

from __future__ import annotations

import time
from typing import Any

import pyarrow as pa

from compeffdist.config import EngineConfig, EvaluationConfig, ModelSpec
from compeffdist.stage import Stage, StageContext, StageOutput


def _evaluate_remote(model: dict[str, Any], engine: dict[str, Any], evaluation: dict[str, Any], data_root: str,
                     label: str) -> list[dict[str, Any]]:  # fmt: skip
    """Runs inside a Ray task that holds the engine's CPUs/GPUs; returns one row per (dataset, seed)."""
    from pathlib import Path

    from compeffdist.engines import create_engine
    from compeffdist.evaluation.runner import evaluate_with_engine

    spec = ModelSpec.model_validate(model)
    engine_config = EngineConfig.model_validate(engine)
    loaded = create_engine(spec, engine_config)
    return evaluate_with_engine(loaded, spec, EvaluationConfig.model_validate(evaluation), Path(data_root), label)


def _models(ctx: StageContext) -> dict[str, ModelSpec]:
    # A path or URI; the evaluation task resolves it on its own node (downloading it from object storage).
    trained = ctx.input_files("training") / "model"
    student = ctx.config.models.student
    available = {
        # The exported folder already has the student's final shape: everything else (dtype, attention,
        # chat template options, trust_remote_code) carries over.
        "student": student.model_copy(update={"name": trained.uri, "derive_layers": None}),
        "base_student": student,
        "teacher": ctx.config.models.teacher,
    }  # fmt: skip
    return {label: available[label] for label in ctx.config.evaluation.models}


def run_evaluation(ctx: StageContext) -> StageOutput:
    """Evaluate each configured model in its own Ray task, one at a time, and publish the comparison."""
    import ray

    from compeffdist.evaluation.report import summarize, write_reports
    from compeffdist.raysession import ensure_ray

    ensure_ray(ctx.config.ray)
    engine = ctx.config.engines.evaluation
    task = ray.remote(_evaluate_remote).options(
        num_cpus=engine.resources.num_cpus_per_actor, num_gpus=engine.resources.num_gpus_per_actor
    )
    rows: list[dict[str, Any]] = []
    models = _models(ctx)
    for label, model in models.items():
        ctx.log(f"evaluating {label} ({model.name}) on {len(ctx.config.evaluation.datasets)} datasets")
        started = time.time()
        rows += ray.get(
            task.remote(model.model_dump(mode="json"), engine.model_dump(mode="json"),
                        ctx.config.evaluation.model_dump(mode="json"), str(ctx.config.run.data_root), label)
        )  # fmt: skip
        ctx.add_actor_time(time.time() - started, engine.resources.num_gpus_per_actor)
        summary = summarize([r for r in rows if r["model"] == label])[label]
        ctx.log(f"{label}: overall {summary['overall']:.2f}")
    summary = write_reports(rows, ctx.files_dir)
    table = pa.Table.from_pylist([{k: v for k, v in r.items() if k != "verbalizer_collisions"} for r in rows])
    collisions = sorted({c for r in rows for c in r.get("verbalizer_collisions", [])})
    return StageOutput(
        table=table,
        counts={"evaluations": len(rows)},
        models={label: spec.name for label, spec in models.items()},
        extra={"overall": {m: s["overall"] for m, s in summary.items()}, "verbalizer_collisions": collisions},
    )


STAGES = [
    Stage(
        name="evaluation",
        run=run_evaluation,
        inputs=("training",),
        sections=("evaluation", "engines.evaluation", "models.student", "models.teacher", "run.data_root"),
        description="SentiBench few-shot evaluation of student, base student (and teacher)",
    )
]
