"""The loss curve of a training run as a PNG (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_loss_curve(metrics: list[dict[str, Any]], path: Path, title: str = "student fine-tuning") -> Path:
    """Plot loss and learning rate against the optimizer step from the reported metrics rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [row["step"] for row in metrics]
    figure, loss_axis = plt.subplots(figsize=(7, 4))
    loss_axis.plot(steps, [row["loss"] for row in metrics], marker="o", color="tab:blue", label="loss")
    loss_axis.set_xlabel("optimizer step")
    loss_axis.set_ylabel("training loss (response tokens)")
    lr_axis = loss_axis.twinx()
    lr_axis.plot(steps, [row["learning_rate"] for row in metrics], color="tab:orange", alpha=0.6, label="lr")
    lr_axis.set_ylabel("learning rate")
    loss_axis.set_title(title)
    figure.legend(loc="upper right")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
