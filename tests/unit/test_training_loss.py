"""The chunked training loss equals the model's own loss and gradients, and never projects a whole micro batch."""

from __future__ import annotations

import pytest
import torch

from compeffdist.training.loss import IGNORE_INDEX, ChunkedLossModel

pytestmark = pytest.mark.unit


def _batch(vocab: int, packed: bool) -> dict[str, torch.Tensor]:
    """Two rows of 13 tokens: prompts and padding carry -100, responses carry their ids."""
    generator = torch.Generator().manual_seed(3)
    ids = torch.randint(3, vocab, (2, 13), generator=generator)
    labels = ids.clone()
    labels[0, :5] = IGNORE_INDEX  # prompt of the first document
    labels[0, 8:10] = IGNORE_INDEX  # prompt of a second packed document
    labels[1, :4] = IGNORE_INDEX
    labels[1, 11:] = IGNORE_INDEX  # padding
    batch = {"input_ids": ids, "labels": labels}
    if packed:
        batch["position_ids"] = torch.tensor([[*range(8), *range(5)], [*range(11), 0, 1]])
    else:
        batch["attention_mask"] = torch.tensor([[1] * 13, [1] * 11 + [0, 0]])
    return batch


def _loss_and_grads(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[float, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    loss = model(**batch).loss
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return loss.item(), grads


@pytest.fixture(scope="module")
def student(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).train()


@pytest.mark.parametrize("packed", [True, False])
@pytest.mark.parametrize("chunk_tokens", [1, 4, 7, 4096])
def test_chunked_loss_and_gradients_equal_the_models_own(student, packed, chunk_tokens):
    batch = _batch(student.config.vocab_size, packed)
    plain_loss, plain_grads = _loss_and_grads(ChunkedLossModel(student, None), batch)
    loss, grads = _loss_and_grads(ChunkedLossModel(student, chunk_tokens), batch)
    assert loss == pytest.approx(plain_loss, abs=1e-5)
    assert grads.keys() == plain_grads.keys()
    head = student.get_output_embeddings().weight  # tied to the input embeddings in this model
    assert any(p is head for name, p in student.named_parameters() if f"model.{name}" in grads)
    for name, grad in plain_grads.items():
        assert (grads[name] - grad).abs().max().item() < 1e-5, name


def test_lm_head_only_sees_labelled_positions_a_chunk_at_a_time(student):
    batch = _batch(student.config.vocab_size, packed=True)
    labelled = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())  # positions whose next token is trained on
    seen: list[int] = []
    hook = student.get_output_embeddings().register_forward_hook(lambda m, args, out: seen.append(args[0].shape[0]))
    try:
        ChunkedLossModel(student, 4)(**batch).loss.backward()
    finally:
        hook.remove()
    forward_calls = -(-labelled // 4)
    assert max(seen) <= 4 and sum(seen[:forward_calls]) == labelled
    assert len(seen) == 2 * forward_calls  # each chunk is recomputed once in backward, never kept
    student.zero_grad(set_to_none=True)


def test_lora_student_gets_the_same_adapter_gradients(tiny_model_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    model = get_peft_model(
        base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    )
    batch = _batch(base.config.vocab_size, packed=True)
    plain_loss, plain_grads = _loss_and_grads(ChunkedLossModel(model, None), batch)
    loss, grads = _loss_and_grads(ChunkedLossModel(model, 5), batch)
    assert loss == pytest.approx(plain_loss, abs=1e-5)
    assert plain_grads and all("lora_" in name for name in plain_grads)
    for name, grad in plain_grads.items():
        assert (grads[name] - grad).abs().max().item() < 1e-5, name


def test_logit_rescaling_families_are_refused(student, monkeypatch):
    monkeypatch.setattr(student.config, "logit_scale", 0.0625, raising=False)
    with pytest.raises(ValueError, match="loss_chunk_tokens: null"):
        ChunkedLossModel(student, 1024)
    assert ChunkedLossModel(student, None).chunk_tokens is None
