"""The two ways a worker updates the student: a DeepSpeed engine (ZeRO 0-3) or plain torch DDP.

Both have the same duck-typed surface, which loop.py uses: `train_micro_batch` takes one micro
batch and steps the optimizer every `gradient_accumulation_steps` of them, `save`/`load` write and
restore the full training state in a folder (every rank calls them), `full_state_dict` hands rank 0
the full (unsharded) weights for export (every rank calls it: ZeRO-3 gathers), and `module` is the
bare model.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

DEEPSPEED_TAG = "deepspeed"
DDP_STATE_FILE = "ddp_state.pt"


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


class DeepSpeedBackend:
    """DeepSpeed engine on the process group Ray Train already set up (gloo on CPU, NCCL on GPU)."""

    def __init__(self, model: Any, training: Any, ds_config: dict[str, Any], lr_factor: Any, backend: str) -> None:
        import deepspeed
        from torch.optim.lr_scheduler import LambdaLR

        from compeffdist.training.deepspeed_config import offloads_optimizer

        deepspeed.init_distributed(dist_backend=backend)  # reuses Ray's process group
        self.engine, _, _, self.scheduler = deepspeed.initialize(
            model=model,
            optimizer=build_optimizer(model, training, offload=offloads_optimizer(ds_config)),
            lr_scheduler=lambda optimizer: LambdaLR(optimizer, lr_factor),
            config=ds_config,
        )
        self.module = self.engine.module
        self.zero_stage = self.engine.zero_optimization_stage()

    def train_micro_batch(self, batch: dict[str, Any]) -> float:
        batch = {k: v.to(self.engine.device) for k, v in batch.items()}
        loss = self.engine(**batch, use_cache=False).loss  # a KV cache would disable packed-document masks
        self.engine.backward(loss)
        self.engine.step()  # applies the optimizer only at accumulation boundaries
        return float(loss.detach())

    def current_lr(self) -> float:
        return float(self.scheduler.get_last_lr()[0])

    def save(self, folder: Path, rank: int) -> None:
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


class DDPBackend:
    """Plain torch DistributedDataParallel (Ray's prepare_model), with manual accumulation and clipping."""

    def __init__(self, model: Any, training: Any, lr_factor: Any, device: Any) -> None:
        import ray.train.torch
        import torch
        from torch.optim.lr_scheduler import LambdaLR

        self.model = ray.train.torch.prepare_model(model)  # DDP when world size > 1
        self.module = getattr(self.model, "module", self.model)
        self.optimizer = build_optimizer(self.module, training)
        self.scheduler = LambdaLR(self.optimizer, lr_factor)
        self.accumulation = training.gradient_accumulation_steps
        self.clip = training.gradient_clipping
        self.device = device
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=training.use_bf16)
        self.micro_steps = 0

    def train_micro_batch(self, batch: dict[str, Any]) -> float:
        import torch

        batch = {k: v.to(self.device) for k, v in batch.items()}
        self.micro_steps += 1
        boundary = self.micro_steps % self.accumulation == 0
        # Skip the gradient all-reduce on micro batches that do not end an accumulation window.
        no_sync = getattr(self.model, "no_sync", contextlib.nullcontext)
        with contextlib.nullcontext() if boundary else no_sync(), self.autocast:
            loss = self.model(**batch, use_cache=False).loss
            (loss / self.accumulation).backward()
        if boundary:
            if self.clip > 0:
                torch.nn.utils.clip_grad_norm_(self.module.parameters(), self.clip)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    def current_lr(self) -> float:
        return float(self.scheduler.get_last_lr()[0])

    def save(self, folder: Path, rank: int) -> None:
        import torch

        if rank == 0:  # DDP replicas are identical
            state = {
                "model": self.module.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "micro_steps": self.micro_steps,
            }
            torch.save(state, folder / DDP_STATE_FILE)

    def load(self, folder: Path) -> None:
        import torch

        state = torch.load(folder / DDP_STATE_FILE, map_location=self.device, weights_only=False)
        self.module.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.micro_steps = state["micro_steps"]

    def full_state_dict(self, rank: int) -> dict[str, Any] | None:
        if rank != 0:
            return None
        return {k: v.detach().cpu().clone() for k, v in self.module.state_dict().items()}
