"""How a worker updates the student: one DeepSpeed engine, ZeRO 0-3 (ZeRO-0 is plain data parallelism).

loop.py uses this surface: `train_micro_batch` takes one micro batch and lets DeepSpeed step the
optimizer every `gradient_accumulation_steps` of them (with clipping), `save`/`load` write and
restore the full training state in a folder (every rank calls them), `full_state_dict` hands rank 0
the full (unsharded) weights for export (every rank calls it: ZeRO-3 gathers), and `module` is the
bare transformers model. Accumulation, clipping, the optimizer step and the checkpoint format are
DeepSpeed's own; the learning-rate schedule is transformers' `get_scheduler`.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

DEEPSPEED_TAG = "deepspeed"


def build_optimizer(model: Any, training: Any, offload: bool = False) -> Any:
    """AdamW with the paper's hyper-parameters: torch's, or DeepSpeedCPUAdam when ZeRO offloads the optimizer.

    ZeRO-Offload refuses a torch optimizer (ZeRORuntimeException): the optimizer step runs on the
    CPU copy of the weights, which DeepSpeedCPUAdam implements. adamw_mode=True keeps the decoupled
    weight decay of AdamW. Its C++ op (cpu_adam) JIT-compiles on first use (~70 s, then cached
    under ~/.cache/torch_extensions); the torch AdamW needs no compilation, hence the default.
    """
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    hyper = dict(lr=training.learning_rate, betas=tuple(training.betas), eps=training.eps,
                 weight_decay=training.weight_decay)  # fmt: skip
    if offload:
        from deepspeed.ops.adam import DeepSpeedCPUAdam

        return DeepSpeedCPUAdam(params, adamw_mode=True, **hyper)
    return torch.optim.AdamW(params, **hyper)


def build_scheduler(optimizer: Any, kind: str, warmup_steps: int, total_steps: int) -> Any:
    """transformers' schedule of that name: linear warmup from 0, then cosine/linear decay to 0 at `total_steps`."""
    from transformers import get_scheduler

    name = "constant_with_warmup" if kind == "constant" and warmup_steps > 0 else kind
    return get_scheduler(name, optimizer, num_warmup_steps=warmup_steps, num_training_steps=total_steps)


class DeepSpeedBackend:
    """DeepSpeed engine on the process group Ray Train already set up (gloo on CPU, NCCL on GPU).

    `trainable` is what DeepSpeed wraps and calls (`trainable(**batch).loss`: the chunked-loss
    wrapper in training); `module` is the model to export, `trainable` itself unless given.
    """

    def __init__(
        self, trainable: Any, training: Any, ds_config: dict[str, Any], total_steps: int, backend: str,
        module: Any = None,
    ) -> None:  # fmt: skip
        import deepspeed

        from compeffdist.training.deepspeed_config import offloads_optimizer

        deepspeed.init_distributed(dist_backend=backend)  # reuses Ray's process group
        self.engine, _, _, self.scheduler = deepspeed.initialize(
            model=trainable,
            optimizer=build_optimizer(trainable, training, offload=offloads_optimizer(ds_config)),
            lr_scheduler=lambda optimizer: build_scheduler(
                optimizer, training.lr_scheduler, training.warmup_steps, total_steps
            ),
            config=ds_config,
        )
        self.module = trainable if module is None else module
        self.zero_stage = self.engine.zero_optimization_stage()

    def train_micro_batch(self, batch: dict[str, Any]) -> float:
        batch = {k: v.to(self.engine.device) for k, v in batch.items()}
        loss = self.engine(**batch).loss
        self.engine.backward(loss)
        self.engine.step()  # applies the optimizer only at accumulation boundaries
        return float(loss.detach())

    def current_lr(self) -> float:
        return float(self.scheduler.get_last_lr()[0])

    def save(self, folder: Path) -> None:
        self.engine.save_checkpoint(str(folder), tag=DEEPSPEED_TAG)

    def load(self, folder: Path) -> None:
        path, _ = self.engine.load_checkpoint(str(folder), tag=DEEPSPEED_TAG)
        if path is None:
            raise RuntimeError(f"no DeepSpeed checkpoint under {folder}")

    def full_state_dict(self, rank: int) -> dict[str, Any] | None:
        import deepspeed

        params = list(self.module.parameters())
        gather = (
            deepspeed.zero.GatheredParameters(params, modifier_rank=None)
            if self.zero_stage == 3
            else contextlib.nullcontext()
        )
        with gather:
            if rank != 0:
                return None
            return {k: v.detach().cpu().clone() for k, v in self.module.state_dict().items()}
