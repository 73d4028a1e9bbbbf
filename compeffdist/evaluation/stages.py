"""Stage `evaluation`: the fine-tuned student, the base student (and optionally the teacher) on SentiBench."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from compeffdist.config import EngineConfig, EvaluationConfig, JobConfig, ModelSpec
from compeffdist.stage import Stage, StageContext, StageOutput


def _evaluate_remote(model: dict[str, Any], engine: dict[str, Any], evaluation: dict[str, Any], data_root: str,
                     label: str, heldout_parts: list[str]) -> tuple[list[dict[str, Any]], pa.Table]:  # fmt: skip
    """Runs inside a Ray task that holds the engine's CPUs/GPUs: one SentiBench row per (dataset, seed), and one
    agreement row per held-out record (agreement.AGREEMENT_SCHEMA; empty without held-out records)."""
    from pathlib import Path

    from compeffdist.engines import create_engine
    from compeffdist.evaluation import agreement
    from compeffdist.evaluation.runner import evaluate_with_engine

    spec = ModelSpec.model_validate(model)
    engine_config = EngineConfig.model_validate(engine)
    settings = EvaluationConfig.model_validate(evaluation)
    records = agreement.read_heldout_records(heldout_parts, settings) if heldout_parts else []
    # The NLL pass loads its own copy of the weights: first, so it is gone before the engine takes the device.
    nll = agreement.score_nll(spec, engine_config, records) if records else {}
    loaded = create_engine(spec, engine_config)
    rows = evaluate_with_engine(loaded, spec, settings, Path(data_root), label)
    answers = agreement.answer_classification(loaded, records, settings.agreement_max_new_tokens)
    return rows, agreement.agreement_rows(label, records, nll, answers)


def _models(ctx: StageContext) -> dict[str, ModelSpec]:
    # A path or URI; the evaluation task resolves it on its own node (downloading it from object storage).
    trained = ctx.input_files("training") / "model"
    student = ctx.config.models.student
    available = {
        # The exported folder already has the student's final shape: everything else (dtype, attention,
        # chat template options, trust_remote_code) carries over.
        "student": student.model_copy(
            update={"name": trained.uri, "derive_layers": None, "derive_layer_choice": "first"}
        ),
        "base_student": student,
        "teacher": ctx.config.models.teacher,
    }  # fmt: skip
    return {label: available[label] for label in ctx.config.evaluation.models}


def engine_for(config: JobConfig, label: str) -> EngineConfig:
    """The engine a model is evaluated on. The students share `engines.evaluation`. The teacher keeps its own
    engine (backend, context) and the GPUs sized for it (tensor x pipeline parallel, vLLM memory settings),
    with the evaluation engine's batch, CPUs and threads: one evaluation task runs at a time, so it does not
    share the machine the way a labeling pool's replicas do."""
    evaluation = config.engines.evaluation
    if label != "teacher":
        return evaluation
    teacher = config.engines.teacher
    gpu_shape = ("tensor_parallel_size", "pipeline_parallel_size", "num_gpus_per_actor", "vllm_engine_kwargs")
    resources = evaluation.resources.model_copy(update={k: getattr(teacher.resources, k) for k in gpu_shape})
    return teacher.model_copy(update={"resources": resources})


def task_gpus(engine: EngineConfig) -> float:
    """GPUs the evaluation task holds: every GPU of a vLLM replica (tensor x pipeline parallel) at once."""
    resources = engine.resources
    return resources.gpus_per_replica if engine.backend == "vllm" else resources.num_gpus_per_actor


def evaluate_on_ray(
    config: JobConfig, models: dict[str, ModelSpec], heldout_parts: list[str], log: Callable[[str], None]
) -> tuple[list[dict[str, Any]], pa.Table, dict[str, float]]:
    """Each model in its own Ray task, one at a time: SentiBench rows, held-out agreement rows, seconds per model.

    `heldout_parts` are the `responses` parts to read held-out records from (none: no agreement measures).
    """
    import ray

    from compeffdist.evaluation.report import summarize
    from compeffdist.raysession import ensure_ray

    ensure_ray(config.ray)
    settings = config.evaluation
    rows: list[dict[str, Any]] = []
    agreement: list[pa.Table] = []
    seconds: dict[str, float] = {}
    for label, model in models.items():
        log(f"evaluating {label} ({model.name}) on {len(settings.datasets)} datasets")
        started = time.time()
        engine = engine_for(config, label)
        task = ray.remote(_evaluate_remote).options(
            num_cpus=engine.resources.num_cpus_per_actor, num_gpus=task_gpus(engine)
        )
        model_rows, model_agreement = ray.get(
            task.remote(model.model_dump(mode="json"), engine.model_dump(mode="json"),
                        settings.model_dump(mode="json"), str(config.run.data_root), label, heldout_parts)
        )  # fmt: skip
        seconds[label] = time.time() - started
        rows += model_rows
        agreement.append(model_agreement)
        summary = summarize(model_rows)[label]
        log(f"{label}: overall {summary['overall']:.2f}; {model_agreement.num_rows} held-out records scored")
    return rows, pa.concat_tables(agreement), seconds


def run_evaluation(ctx: StageContext) -> StageOutput:
    """Evaluate each configured model in its own Ray task, one at a time, and publish the comparison."""
    from compeffdist.evaluation.comparison import HELDOUT_RECORDS, write_comparison
    from compeffdist.evaluation.report import write_reports

    settings = ctx.config.evaluation
    heldout_parts = [str(part) for part in ctx.input_parts("responses")] if settings.heldout.fraction > 0 else []
    models = _models(ctx)
    rows, heldout, seconds = evaluate_on_ray(ctx.config, models, heldout_parts, ctx.log)
    for label, busy in seconds.items():
        ctx.add_actor_time(busy, task_gpus(engine_for(ctx.config, label)))
    summary = write_reports(rows, ctx.files_dir, settings.confidence)
    pq.write_table(heldout, ctx.files_dir / HELDOUT_RECORDS)  # per record and model, for experiments to pair up
    headline = write_comparison(rows, heldout, ctx.files_dir, settings.bootstrap_resamples, settings.confidence)
    ctx.log(headline)
    table = pa.Table.from_pylist([{k: v for k, v in r.items() if k != "verbalizer_collisions"} for r in rows])
    collisions = sorted({c for r in rows for c in r.get("verbalizer_collisions", [])})
    return StageOutput(
        table=table,
        counts={"evaluations": len(rows), "heldout_records": heldout.num_rows // max(len(models), 1)},
        models={label: spec.name for label, spec in models.items()},
        extra={
            "overall": {m: s["overall"] for m, s in summary.items()},
            "verbalizer_collisions": collisions,
            "headline": headline,
        },
    )


STAGES = [
    Stage(
        name="evaluation",
        run=run_evaluation,
        inputs=("training", "responses"),
        sections=(
            "evaluation",
            "engines.evaluation",
            "engines.teacher",
            "models.student",
            "models.teacher",
            "run.data_root",
        ),
        description="SentiBench few-shot evaluation of student, base student (and teacher), and their agreement "
        "with the teacher on held-out teacher-labeled records",
    )
]
