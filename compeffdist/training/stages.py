"""Stage `training`: fine-tune the student on the selected teacher responses (Ray Data + Ray Train + DeepSpeed)."""

from __future__ import annotations

import pyarrow as pa

from compeffdist.stage import Stage, StageContext, StageOutput

MODEL_FOLDER = "model"
LOSS_PLOT = "loss.png"
SEQUENCES = "sequences"


def train_student(ctx: StageContext) -> StageOutput:
    """Tokenize and pack the selection with Ray Data tasks, train, export; one table row per report.

    The selection's parts are read by the tasks, never by the driver; sequences and rejects land in
    the work area, where a restarted stage finds them (and Ray Train's checkpoints) again.
    """
    from compeffdist.models.registry import load_tokenizer
    from compeffdist.raysession import ensure_ray
    from compeffdist.training.data import prepare_sequences
    from compeffdist.training.plot import plot_loss_curve
    from compeffdist.training.trainer import run_training

    training = ctx.config.training
    student = ctx.config.models.student
    seed = ctx.config.seed_of("training")
    ensure_ray(ctx.config.ray)
    prepared = prepare_sequences(ctx.input_parts("selection"), ctx.work / SEQUENCES, student, training, seed)
    for reject in prepared.rejects():
        ctx.reject("selection", reject["record_id"], reject["field"], reject["reason"], reject["raw"])
    counts = prepared.counts
    ctx.log(
        f"{counts['records']} records in {prepared.chunks} chunks ({prepared.resumed_chunks} from an earlier run): "
        f"{counts['examples']} examples ({counts['rejected']} rejected, {counts['truncated']} truncated) "
        f"-> {counts['sequences']} sequences of <= {training.max_seq_len} tokens"
    )
    run = run_training(
        prepared.sequences,
        student=student,
        training=training,
        seed=seed,
        pad_token_id=load_tokenizer(student, padding_side="right").pad_token_id,
        storage=ctx.work / "ray_train",
        export_dir=ctx.files_dir / MODEL_FOLDER,
    )
    plot_loss_curve(run.metrics, ctx.files_dir / LOSS_PLOT, title=f"{student.name} (ZeRO-{training.zero_stage})")
    last = run.metrics[-1]
    ctx.add_actor_time(last["train_seconds"] * training.num_workers, 1.0 if training.use_gpu else 0.0)
    resumed = f"; resumed from step {run.resumed_from_step}" if run.resumed_from_step else ""
    ctx.log(
        f"trained {last['step']} steps; final loss {last['loss']:.4f}; {last['seconds_per_step']:.2f} s/step{resumed}"
    )
    return StageOutput(
        table=pa.Table.from_pylist(run.metrics),
        counts={
            "rows": counts["records"],
            "examples": counts["examples"],
            "rejected": counts["rejected"],
            "truncated": counts["truncated"],
            "sequences": counts["sequences"],
            "steps": int(last["step"]),
            "tokens": int(last["tokens"]),
            "loss_tokens": int(last["loss_tokens"]),
        },
        models={"student_base": student.name, "student": f"files/{MODEL_FOLDER}"},
        extra={
            "plan": run.plan.as_dict(),
            "final_loss": last["loss"],
            "train_seconds": last["train_seconds"],
            "resumed_from_step": run.resumed_from_step,
        },
    )


STAGES = [
    Stage(
        name="training",
        run=train_student,
        inputs=("selection",),
        sections=("training", "models.student", "run.seed"),
        description="fine-tune the student on the selected teacher responses (Ray Data + Ray Train + DeepSpeed)",
    )
]
