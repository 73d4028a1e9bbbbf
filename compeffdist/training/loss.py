"""The student's training loss without full-vocabulary fp32 logits for the whole micro batch.

A causal LM's own loss (transformers' `ForCausalLMLoss`) projects every position of the micro batch
onto the vocabulary and upcasts the logits to fp32: for 8 x 2048 tokens and a 128k vocabulary that
is 8 GiB of logits, about 20 GiB with their gradient and softmax, more than a 40/48 GB GPU has
left after a 3-4B student. `ChunkedLossModel` runs the decoder, keeps only the positions with a
label (the response tokens; prompts and padding carry -100), and computes lm_head + cross-entropy
on `chunk_tokens` of them at a time inside `torch.utils.checkpoint`: only one chunk's logits exist
at once, in forward and in backward (recomputed there). The result is the plain loss (the mean
over labelled tokens of the micro batch) and its gradients, to float rounding
(tests/unit/test_training_loss.py).

Liger-Kernel's fused linear cross-entropy does the same in Triton; it needs a GPU (Triton does not
run on this CPU-only machine), so the project uses this pure-torch version everywhere.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint
from transformers.modeling_outputs import CausalLMOutput

IGNORE_INDEX = -100
# Config attributes of model families that rescale logits in ways the chunked loss does not reproduce.
UNSUPPORTED_LOGIT_SCALING = ("logit_scale", "logits_scaling")


def causal_lm_of(model: Any) -> Any:
    """The transformers causal LM inside `model` (itself, or the base model a peft wrapper adapts in place)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _chunk_loss_sum(hidden: torch.Tensor, targets: torch.Tensor, lm_head: torch.nn.Module, softcap: float | None):
    logits = lm_head(hidden).float()  # upcast per chunk, as transformers' loss does for the whole batch
    if softcap is not None:  # Gemma-style final-logit soft-capping, as the model's own forward applies it
        logits = torch.tanh(logits / softcap) * softcap
    return F.cross_entropy(logits, targets, reduction="sum")


def chunked_causal_lm_loss(
    hidden: torch.Tensor, labels: torch.Tensor, lm_head: torch.nn.Module, chunk_tokens: int,
    softcap: float | None = None,
) -> torch.Tensor:  # fmt: skip
    """Mean next-token cross-entropy over labelled positions, computed `chunk_tokens` positions at a time.

    `hidden` is the decoder's last hidden state (batch, seq, dim), `labels` (batch, seq) the input ids
    with -100 where no loss is taken; position t predicts label t+1, as in transformers.
    """
    shifted = F.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:]
    keep = shifted != IGNORE_INDEX
    states, targets = hidden[keep], shifted[keep]  # only the positions that are trained on
    count = targets.numel()
    if count == 0:
        return hidden.sum() * 0.0  # keeps the graph (and DeepSpeed's gradient hooks) intact
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, count, chunk_tokens):
        part = slice(start, start + chunk_tokens)
        # Non-reentrant checkpoint: the chunk's logits are not kept for backward but recomputed there, and every
        # chunk's gradient reaches the same lm_head parameter node (summed once, as DDP/ZeRO hooks expect).
        total = total + checkpoint(_chunk_loss_sum, states[part], targets[part], lm_head, softcap, use_reentrant=False)
    return total / count


class ChunkedLossModel(torch.nn.Module):
    """Wraps a causal LM (or its peft wrapper) so `forward(**batch).loss` is the chunked loss.

    `chunk_tokens=None` uses the model's own loss (full logits). DeepSpeed wraps this module; the
    model itself stays `self.model` for export.
    """

    def __init__(self, model: Any, chunk_tokens: int | None) -> None:
        super().__init__()
        self.model = model
        self.chunk_tokens = chunk_tokens
        config = causal_lm_of(model).config.get_text_config()
        scaled = [name for name in UNSUPPORTED_LOGIT_SCALING if getattr(config, name, None) not in (None, 1.0)]
        if chunk_tokens is not None and scaled:
            raise ValueError(
                f"{type(config).__name__} rescales logits ({', '.join(scaled)}), which the chunked loss does not "
                "reproduce: set training.loss_chunk_tokens: null to use the model's own loss"
            )
        self.softcap = getattr(config, "final_logit_softcapping", None)

    def forward(
        self,
        input_ids: torch.Tensor,
        labels: torch.Tensor,
        position_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> CausalLMOutput:
        # No KV cache: with one, transformers ignores packed position ids and documents would attend to each other.
        inputs = {"input_ids": input_ids, "position_ids": position_ids, "attention_mask": attention_mask}
        if self.chunk_tokens is None:
            return CausalLMOutput(loss=self.model(**inputs, labels=labels, use_cache=False).loss)
        causal_lm = causal_lm_of(self.model)
        hidden = causal_lm.get_decoder()(**inputs, use_cache=False).last_hidden_state
        lm_head = causal_lm.get_output_embeddings()
        return CausalLMOutput(loss=chunked_causal_lm_loss(hidden, labels, lm_head, self.chunk_tokens, self.softcap))
