"""Stage `training`: fine-tune the student on the selected teacher responses (Ray Train + DeepSpeed)."""

from __future__ import annotations

import pyarrow as pa

from compeffdist.stage import Stage, StageContext, StageOutput

MODEL_FOLDER = "model"
LOSS_PLOT = "loss.png"


def train_student(ctx: StageContext) -> StageOutput:
    """Tokenize the selection with the student's chat template, pack, train, export; one row per report."""
    from compeffdist.models.registry import load_tokenizer
    from compeffdist.training.examples import build_examples
    from compeffdist.training.packing import pack_sequences, shuffled, single_sequences
    from compeffdist.training.plot import plot_loss_curve
    from compeffdist.training.trainer import run_training

    training = ctx.config.training
    student = ctx.config.models.student
    seed = ctx.config.seed_of("training")
    rows = ctx.read("selection", columns=["record_id", "messages", "response"]).to_pylist()
    tokenizer = load_tokenizer(student, padding_side="right")
    examples, rejects = build_examples(rows, tokenizer, training.max_seq_len, student.chat_template_kwargs)
    for reject in rejects:
        ctx.reject("selection", reject.record_id, reject.field, reject.reason, reject.raw)
    ordered = shuffled(examples, seed)
    sequences = pack_sequences(ordered, training.max_seq_len) if training.packing else single_sequences(ordered)
    ctx.log(
        f"{len(examples)} examples ({len(rejects)} rejected, {sum(e.truncated for e in examples)} truncated) "
        f"-> {len(sequences)} sequences of <= {training.max_seq_len} tokens"
    )
    run = run_training(
        sequences,
        student=student,
        training=training,
        seed=seed,
        pad_token_id=tokenizer.pad_token_id,
        storage=ctx.work / "ray_train",
        export_dir=ctx.files_dir / MODEL_FOLDER,
    )
    plot_loss_curve(run.metrics, ctx.files_dir / LOSS_PLOT, title=f"{student.name} ({training.strategy})")
    last = run.metrics[-1]
    ctx.add_actor_time(last["train_seconds"] * training.num_workers, 1.0 if training.use_gpu else 0.0)
    ctx.log(f"trained {last['step']} steps; final loss {last['loss']:.4f}; {last['seconds_per_step']:.2f} s/step")
    return StageOutput(
        table=pa.Table.from_pylist(run.metrics),
        counts={
            "rows": len(rows),
            "examples": len(examples),
            "rejected": len(rejects),
            "truncated": sum(e.truncated for e in examples),
            "sequences": len(sequences),
            "steps": int(last["step"]),
            "tokens": int(last["tokens"]),
            "loss_tokens": int(last["loss_tokens"]),
        },
        models={"student_base": student.name, "student": f"files/{MODEL_FOLDER}"},
        extra={"plan": run.plan.as_dict(), "final_loss": last["loss"], "train_seconds": last["train_seconds"]},
    )


STAGES = [
    Stage(
        name="training",
        run=train_student,
        inputs=("selection",),
        sections=("training", "models.student", "run.seed"),
        description="fine-tune the student on the selected teacher responses (Ray Train + DeepSpeed)",
    )
]
