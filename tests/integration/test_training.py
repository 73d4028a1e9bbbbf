"""Student fine-tuning on a real local Ray: 2 workers, DeepSpeed ZeRO-0/2/3 on gloo, a tiny Llama, sequences
prepared by Ray Data tasks; and ZeRO-Offload in one gloo process on a tiny module.

The toy task is learnable: the response is "positive" or "negative" depending on the adjective
right after "The food was". The first DeepSpeed init on a machine JIT-compiles shm_comm (~40 s),
the first offloaded optimizer cpu_adam (~70-130 s); both are cached in ~/.cache/torch_extensions.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from compeffdist.config import ModelSpec, TrainingConfig
from compeffdist.storage import Location

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
                "messages": [{"role": "user", "content": text}],
                "instruction": text,
                "response": "positive" if first in GOOD else "negative",
            })  # fmt: skip
    return rows


def toy_training(**overrides) -> TrainingConfig:
    # 16 packed sequences, 2 workers, micro batch 1, accumulation 2: 4 steps per epoch, 16 in all. Checkpoints at
    # steps 3, 6, 9...: inside an epoch, so a resume has to skip micro batches, not just start an epoch. The loss is
    # chunked (16 labelled positions per chunk, so several chunks per micro batch).
    settings = dict(
        zero_stage=2, num_workers=2, epochs=4, micro_batch_size=1,
        gradient_accumulation_steps=2, max_seq_len=128, learning_rate=3e-3, report_every_steps=2,
        checkpoint_every_steps=3, gradient_checkpointing=False, max_failures=0, loss_chunk_tokens=16,
    )  # fmt: skip
    settings.update(overrides)
    return TrainingConfig(**settings)


@pytest.fixture(scope="module")
def ray_quiet(ray_local):
    ray_local.data.DataContext.get_current().enable_progress_bars = False
    return ray_local


@pytest.fixture(scope="module")
def toy(ray_quiet, tmp_path_factory):
    """A tiny Llama whose tokenizer knows the toy vocabulary, and the sequences Ray Data tasks packed for it."""
    from compeffdist.models.registry import load_tokenizer
    from compeffdist.models.tiny import build_tiny_llama
    from compeffdist.training.data import SELECTION_SCHEMA, prepare_sequences

    rows = toy_rows()
    root = tmp_path_factory.mktemp("toy")
    model_dir = build_tiny_llama(root / "llama", [r["messages"][0]["content"] for r in rows] + ["positive negative"])
    spec = ModelSpec(name=str(model_dir))
    part = Location.of(root / "selection" / "part-00000.parquet")
    part.write_parquet(pa.Table.from_pylist(rows, schema=SELECTION_SCHEMA))
    prepared = prepare_sequences([part], Location.of(root / "sequences"), spec, toy_training(), seed=0)
    assert prepared.counts["rejected"] == 0 and prepared.sequences.total == 16
    tokenizer = load_tokenizer(spec, padding_side="right")
    return {"spec": spec, "tokenizer": tokenizer, "sequences": prepared.sequences}


def train(toy, root: Path, name: str, training: TrainingConfig):
    from compeffdist.training.trainer import run_training

    return run_training(
        toy["sequences"], student=toy["spec"], training=training, seed=0,
        pad_token_id=toy["tokenizer"].pad_token_id, storage=Location.of(root / "storage"),
        export_dir=root / f"export-{name}", run_name=name,
    )  # fmt: skip


@pytest.fixture(scope="module")
def zero2_run(toy, tmp_path_factory):
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


def reported_steps(total: int, report_every: int, checkpoint_every: int) -> list[int]:
    """Steps with a metrics row: every report step, every checkpoint step, and the last one."""
    return sorted({*range(report_every, total + 1, report_every), *range(checkpoint_every, total, checkpoint_every),
                   total})  # fmt: skip


def test_zero2_loss_goes_down_and_the_export_generates(zero2_run):
    _, run = zero2_run
    losses = [row["loss"] for row in run.metrics]
    assert (run.plan.steps_per_epoch, run.plan.total_steps) == (4, 16)
    assert [row["step"] for row in run.metrics] == reported_steps(16, 2, 3)
    assert losses[-1] < 0.5 * losses[0], losses
    assert all(row["tokens_per_s"] > 0 and row["learning_rate"] > 0 for row in run.metrics)
    answers = greedy_answers(run.model_dir, ["The food was great and the service was bad.",
                                             "The food was awful and the service was nice."])  # fmt: skip
    assert all(a.split()[0] in ("positive", "negative") for a in answers), answers


def fail_then_resume(toy, root: Path, name: str, training: TrainingConfig, fail_after: int, monkeypatch):
    """Run with an injected failure after step `fail_after`, check the last checkpoint, re-run to the end.

    Returns the resumed run and the metrics rows stored in the checkpoint it resumed from.
    """
    from compeffdist.training.loop import METRICS_FILE, STATE_FILE
    from compeffdist.training.trainer import FAIL_AFTER_STEP_ENV

    monkeypatch.setenv(FAIL_AFTER_STEP_ENV, str(fail_after))
    with pytest.raises(Exception, match=f"injected failure after step {fail_after}"):
        train(toy, root, name, training)
    monkeypatch.delenv(FAIL_AFTER_STEP_ENV)
    states = sorted((root / "storage" / name).rglob(STATE_FILE))
    last = max(states, key=lambda p: json.loads(p.read_text())["step"])
    saved = [json.loads(line) for line in (last.parent / METRICS_FILE).read_text().splitlines() if line]
    expected_step = fail_after - fail_after % training.checkpoint_every_steps  # the last checkpoint before it
    assert json.loads(last.read_text())["step"] == saved[-1]["step"] == expected_step < fail_after
    return train(toy, root, name, training), saved


def assert_same_run(got, want, tolerance: float = 1e-5) -> None:
    """Same reported steps, losses and exported weights."""
    from safetensors.torch import load_file

    assert [r["step"] for r in got.metrics] == [r["step"] for r in want.metrics]
    assert [r["loss"] for r in got.metrics] == pytest.approx([r["loss"] for r in want.metrics], rel=tolerance)
    expected, actual = load_file(want.model_dir / "model.safetensors"), load_file(got.model_dir / "model.safetensors")
    assert expected.keys() == actual.keys()
    for key in expected:
        assert (expected[key] - actual[key]).abs().max().item() < tolerance, key


def test_killed_run_resumes_with_the_same_steps_and_weights(zero2_run, toy, monkeypatch):
    """Fail after step 5, between checkpoints and in the next epoch: the run resumes from step 3 (mid-epoch 0,
    6 of 8 micro batches consumed), redoes steps 4-5 and ends with the uninterrupted run's data order, steps,
    losses and weights."""
    root, reference = zero2_run
    resumed, saved = fail_then_resume(toy, root, "resumed", toy_training(), 5, monkeypatch)
    assert_same_run(resumed, reference)
    # Resumed, not restarted: the rows up to the checkpoint are the failed run's own (timings included).
    assert resumed.metrics[: len(saved)] == saved
    assert (resumed.resumed_from_step, reference.resumed_from_step) == (3, 0)


def test_zero0_survives_a_worker_failure_within_one_run(zero2_run, toy, tmp_path, monkeypatch):
    """max_failures: 1 and a failure injected after step 5: Ray Train restarts the worker group from the step-3
    checkpoint inside the same fit(), and the run ends like the uninterrupted one. ZeRO-0 (plain data parallelism,
    what the former DDP backend did) trains like ZeRO-2."""
    from compeffdist.training.trainer import FAIL_AFTER_STEP_ENV

    monkeypatch.setenv(FAIL_AFTER_STEP_ENV, "5")
    run = train(toy, tmp_path, "zero0", toy_training(zero_stage=0, max_failures=1))
    assert json.loads((tmp_path / "storage" / "zero0-injected-failure.json").read_text()) == {"step": 5}
    assert run.resumed_from_step == 3
    assert_same_run(run, zero2_run[1], tolerance=1e-4)


def test_zero3_resumes_and_exports_full_weights(zero2_run, toy, tmp_path, monkeypatch):
    """ZeRO-3 (partitioned parameters and optimizer states; the export gathers them) killed after step 14 and
    resumed from step 12, an epoch boundary this time: it ends where the uninterrupted ZeRO-2 run ends."""
    import torch
    from transformers import AutoModelForCausalLM

    run, saved = fail_then_resume(toy, tmp_path, "zero3", toy_training(zero_stage=3), 14, monkeypatch)
    assert run.metrics[: len(saved)] == saved
    assert_same_run(run, zero2_run[1], tolerance=1e-4)
    model = AutoModelForCausalLM.from_pretrained(run.model_dir, dtype=torch.float32)
    base = AutoModelForCausalLM.from_pretrained(toy["spec"].name, dtype=torch.float32)
    for (name, trained), (_, initial) in zip(model.named_parameters(), base.named_parameters(), strict=True):
        assert trained.shape == initial.shape and trained.numel() > 0, name  # gathered, not ZeRO-3 shards
    assert not torch.equal(model.model.layers[0].mlp.up_proj.weight, base.model.layers[0].mlp.up_proj.weight)


def test_training_stage_with_zero0_and_lora(ray_quiet, toy, tmp_path, data_root):
    """The pipeline stage end to end: rejects, one table row per report, loss plot, a plain HF model folder."""
    from helpers import tiny_config

    from compeffdist.config import JobConfig
    from compeffdist.pipeline import Runner
    from compeffdist.stage import Stage, StageOutput
    from compeffdist.training.stages import STAGES

    rows = [*toy_rows(), {"record_id": "broken", "messages": [], "instruction": "x", "response": "y"}]
    selection = Stage(name="selection", run=lambda ctx: StageOutput(table=pa.Table.from_pylist(rows)))
    training = toy_training(zero_stage=0, epochs=2, lora={"r": 8, "alpha": 16, "dropout": 0.0})
    config = JobConfig.model_validate(
        tiny_config(tmp_path, data_root, Path(toy["spec"].name), training=training.model_dump(mode="json"))
    )
    runner = Runner(config, stages=[selection, *STAGES])
    states = runner.run()
    assert [s.state for s in states] == ["done", "done"]
    manifest = runner.store.manifest("training")
    assert manifest.counts["rows"] == 65 and manifest.counts["rejected"] == 1 and manifest.counts["examples"] == 64
    table = runner.store.read_table("training")
    assert table.column("step").to_pylist() == reported_steps(manifest.counts["steps"], 2, 3)
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


@pytest.fixture(scope="module")
def single_gloo_process():
    """This process as a world of one (gloo), as torchrun would describe it.

    One group for the whole module: DeepSpeed caches the world group, so a group destroyed and
    created again between tests would leave it holding a dead one.
    """
    import socket

    import torch.distributed as dist

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1",
                            "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}.items():  # fmt: skip
            patch.setenv(name, value)
        yield
        if dist.is_initialized():
            dist.destroy_process_group()


@pytest.mark.parametrize("zero_stage", [2, 3])
def test_offloaded_optimizer_trains_like_torch_adamw(single_gloo_process, zero_stage):
    """offload_optimizer: true through the real DeepSpeedBackend (ZeRO-Offload refuses a torch optimizer): two
    optimizer steps of two accumulated micro batches end where torch AdamW (decoupled weight decay) ends."""
    import copy
    from types import SimpleNamespace

    import torch
    from deepspeed.ops.adam import DeepSpeedCPUAdam

    from compeffdist.training.backends import DeepSpeedBackend
    from compeffdist.training.deepspeed_config import build_deepspeed_config, offloads_optimizer

    class Regression(torch.nn.Module):
        """The smallest module with the `model(**batch, use_cache=False).loss` interface the backend calls."""

        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(8, 4)

        def forward(self, inputs, targets):
            return SimpleNamespace(loss=((self.linear(inputs) - targets) ** 2).mean())

    training = TrainingConfig(
        zero_stage=zero_stage, offload_optimizer=True, num_workers=1, micro_batch_size=4, lr_scheduler="constant",
        gradient_accumulation_steps=2, gradient_clipping=0.0, learning_rate=0.05, weight_decay=0.5,
    )  # fmt: skip
    ds_config = build_deepspeed_config(training)
    assert offloads_optimizer(ds_config)
    torch.manual_seed(0)
    model = Regression()
    reference = copy.deepcopy(model)
    batches = [{"inputs": torch.randn(4, 8), "targets": torch.randn(4, 4)} for _ in range(4)]

    backend = DeepSpeedBackend(model, training, ds_config, total_steps=2, backend="gloo")
    assert backend.engine.zero_cpu_offload() and isinstance(backend.engine.basic_optimizer, DeepSpeedCPUAdam)
    losses = [backend.train_micro_batch(batch) for batch in batches]
    weights = backend.full_state_dict(rank=0)

    optimizer = torch.optim.AdamW(reference.parameters(), lr=0.05, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.5)
    expected_losses = []
    for index, batch in enumerate(batches):
        loss = reference(**batch).loss
        expected_losses.append(loss.item())
        (loss / 2).backward()
        if index % 2 == 1:
            optimizer.step()
            optimizer.zero_grad()
    assert losses == pytest.approx(expected_losses, rel=1e-5)
    for name, value in reference.state_dict().items():
        assert torch.allclose(weights[name], value, atol=1e-6), name
    assert not torch.allclose(weights["linear.weight"], Regression().linear.weight)
