"""The plain per-record, per-token rank score, written like the official script (one record per forward,
one softmax + sort + search per token). It is the yardstick the vectorized scorer is tested and
benchmarked against, not a production path.

The sort is stable, as torch.sort is on CUDA where the official script runs: equally probable tokens keep
ascending id order (docs/fidelity.md), the `sort_position` tie rule.
"""

from __future__ import annotations

from typing import Any

from compeffdist.difficulty.texts import ScoringText


def reference_token_scores(model: Any, text: ScoringText, top_p: float = 0.95) -> list[float]:
    """Rank score of every predicted response token of `text`, one token at a time."""
    import torch

    device = next(model.parameters()).device
    with torch.inference_mode():
        logits = model(torch.tensor([text.input_ids], device=device)).logits[0]
    scores = []
    for position in range(max(text.response_start, 1), text.response_end):
        target = text.input_ids[position]
        probs = torch.softmax(logits[position - 1].float(), dim=-1)
        sorted_probs, sorted_ids = torch.sort(probs, descending=True, stable=True)
        nucleus = min(int((torch.cumsum(sorted_probs, dim=0) < top_p).sum().item()) + 1, probs.shape[0])
        top = sorted_ids[:nucleus].tolist()
        scores.append(top.index(target) / nucleus if target in top else 1.0)
    return scores
