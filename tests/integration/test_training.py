"""Student fine-tuning on a real local Ray: 2 workers, DeepSpeed ZeRO-2/3 and DDP on gloo, a tiny Llama.

The toy task is learnable: the response is "positive" or "negative" depending on the adjective
right after "The food was". The first DeepSpeed init on a machine JIT-compiles shm_comm (~40 s).
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from compeffdist.config import ModelSpec, TrainingConfig

pytestmark = pytest.mark.integration

GOOD = ["good", "great", "fine", "nice"]
BAD = ["bad", "awful", "poor", "terrible"]


def toy_rows() -> list[dict]:
    rows = []
    for i, first in enumerate(GOOD + BAD):
        for j, second in enumerate(GOOD + BAD):
            text = f"The food was {first} and the service was {second}."
            rows.append({
                "record_id": f"r{i}{j}",
                "messages": json.dumps([{"role": "user", "content": text}]),
                "instruction": text,
                "response": "positive" if first in GOOD else "negative",
            })  # fmt: skip
    return rows


def toy_training(**overrides) -> TrainingConfig:
    settings = dict(
        strategy="deepspeed", zero_stage=2, num_workers=2, epochs=4, micro_batch_size=2,
        gradient_accumulation_steps=1, max_seq_len=128, learning_rate=3e-3, report_every_steps=2,
        checkpoint_every_steps=4, gradient_checkpointing=False,
    )  # fmt: skip
    settings.update(overrides)
    return TrainingConfig(**settings)


@pytest.fixture(scope="module")
def ray_quiet(ray_local):
    ray_local.data.DataContext.get_current().enable_progress_bars = False
    return ray_local


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A tiny Llama whose tokenizer knows the toy vocabulary, and the packed training sequences."""
    from compeffdist.models.registry import load_tokenizer
    from compeffdist.models.tiny import build_tiny_llama
    from compeffdist.training.examples import build_examples
    from compeffdist.training.packing import pack_sequences, shuffled

    rows = toy_rows()
    model_dir = build_tiny_llama(tmp_path_factory.mktemp("toy-llama"), [json.loads(r["messages"])[0]["content"]
                                 for r in rows] + ["positive negative"])  # fmt: skip
    spec = ModelSpec(name=str(model_dir))
    tokenizer = load_tokenizer(spec, padding_side="right")
    examples, rejects = build_examples(rows, tokenizer, max_seq_len=128)
    assert not rejects
    return {"spec": spec, "tokenizer": tokenizer, "sequences": pack_sequences(shuffled(examples, 0), 128)}


def train(toy, root: Path, name: str, training: TrainingConfig):
    from compeffdist.training.trainer import run_training

    return run_training(
        toy["sequences"], student=toy["spec"], training=training, seed=0,
        pad_token_id=toy["tokenizer"].pad_token_id, storage_dir=root / "storage", export_dir=root / f"export-{name}",
        run_name=name,
    )  # fmt: skip


@pytest.fixture(scope="module")
def zero2_run(ray_quiet, toy, tmp_path_factory):
    root = tmp_path_factory.mktemp("zero2")
    return root, train(toy, root, "reference", toy_training())


def greedy_answers(model_dir: Path, texts: list[str]) -> list[str]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    answers = []
    for text in texts:
        prompt = tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                               add_generation_prompt=True)  # fmt: skip
        ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        out = model.generate(**ids, max_new_tokens=4, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        answers.append(tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True).strip())
    return answers


def test_zero2_loss_goes_down_and_the_export_generates(zero2_run):
    _, run = zero2_run
    losses = [row["loss"] for row in run.metrics]
    assert [row["step"] for row in run.metrics] == list(range(2, run.plan.total_steps + 1, 2))
    assert losses[-1] < 0.5 * losses[0], losses
    assert all(row["tokens_per_s"] > 0 and row["learning_rate"] > 0 for row in run.metrics)
    answers = greedy_answers(run.model_dir, ["The food was great and the service was bad.",
                                             "The food was awful and the service was nice."])  # fmt: skip
    assert all(a.split()[0] in ("positive", "negative") for a in answers), answers


def test_killed_run_resumes_with_the_same_steps_and_weights(zero2_run, toy, monkeypatch):
    """Fail after step 4 (a checkpoint step), re-run: steps continue and the weights equal the uninterrupted run."""
    from safetensors.torch import load_file

    from compeffdist.training.trainer import FAIL_AFTER_STEP_ENV

    root, reference = zero2_run
    monkeypatch.setenv(FAIL_AFTER_STEP_ENV, "4")
    with pytest.raises(Exception, match="injected failure after step 4"):
        train(toy, root, "resumed", toy_training())
    monkeypatch.delenv(FAIL_AFTER_STEP_ENV)
    resumed = train(toy, root, "resumed", toy_training())
    assert [r["step"] for r in resumed.metrics] == [r["step"] for r in reference.metrics]
    assert [r["loss"] for r in resumed.metrics] == pytest.approx([r["loss"] for r in reference.metrics], rel=1e-5)
    want, got = load_file(reference.model_dir / "model.safetensors"), load_file(resumed.model_dir / "model.safetensors")
    assert want.keys() == got.keys()
    for key in want:
        assert (want[key] - got[key]).abs().max().item() < 1e-5, key


def test_zero3_trains_and_exports_full_weights(ray_quiet, toy, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    run = train(toy, tmp_path, "zero3", toy_training(zero_stage=3, epochs=2, checkpoint_every_steps=100))
    assert run.metrics[-1]["loss"] < 0.7 * run.metrics[0]["loss"]
    model = AutoModelForCausalLM.from_pretrained(run.model_dir, dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(toy["spec"].name, dtype=torch.float32)
    for (name, trained), (_, initial) in zip(model.named_parameters(), base.named_parameters(), strict=True):
        assert trained.shape == initial.shape and trained.numel() > 0, name  # gathered, not ZeRO-3 shards
    assert not torch.equal(model.model.layers[0].mlp.up_proj.weight, base.model.layers[0].mlp.up_proj.weight)


def test_training_stage_with_ddp_and_lora(ray_quiet, toy, tmp_path, data_root):
    """The pipeline stage end to end: rejects, one table row per report, loss plot, a plain HF model folder."""
    from helpers import tiny_config

    from compeffdist.config import JobConfig
    from compeffdist.pipeline import Runner
    from compeffdist.stage import Stage, StageOutput
    from compeffdist.training.stages import STAGES

    rows = [*toy_rows(), {"record_id": "broken", "messages": "not json", "instruction": "x", "response": "y"}]
    selection = Stage(name="selection", run=lambda ctx: StageOutput(table=pa.Table.from_pylist(rows)))
    training = toy_training(strategy="ddp", epochs=2, lora={"r": 8, "alpha": 16, "dropout": 0.0})
    config = JobConfig.model_validate(
        tiny_config(tmp_path, data_root, Path(toy["spec"].name), training=training.model_dump(mode="json"))
    )
    runner = Runner(config, stages=[selection, *STAGES])
    states = runner.run()
    assert [s.state for s in states] == ["done", "done"]
    manifest = runner.store.manifest("training")
    assert manifest.counts["rows"] == 65 and manifest.counts["rejected"] == 1 and manifest.counts["examples"] == 64
    table = runner.store.read_table("training")
    assert table.column("step").to_pylist() == list(range(2, manifest.counts["steps"] + 1, 2))
    files = runner.store.files_dir("training")
    assert (files / "loss.png").stat().st_size > 1000
    assert table.column("loss").to_pylist()[-1] < table.column("loss").to_pylist()[0]
    # merged LoRA: a plain transformers folder (no adapter files) whose adapted weights moved
    import torch
    from transformers import AutoModelForCausalLM

    assert not (files / "model" / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(files / "model", dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(toy["spec"].name, dtype=torch.float32)
    assert not torch.equal(merged.model.layers[0].self_attn.q_proj.weight, base.model.layers[0].self_attn.q_proj.weight)
    assert torch.equal(merged.model.norm.weight, base.model.norm.weight)  # not a LoRA target: untouched
    ids = torch.tensor([toy["tokenizer"]("The food was nice", add_special_tokens=False)["input_ids"]])
    assert merged.generate(ids, max_new_tokens=3, do_sample=False).shape[1] > ids.shape[1]
