"""Vectorized per-token statistics from next-token distributions: rank score and log-likelihood.

The rank score of a teacher token y_t (METHOD.md §3.1) is r_t / n_t when r_t < n_t and 1.0
otherwise, where r_t is the 0-based rank of y_t in the scorer's next-token distribution sorted by
probability and n_t, the 0.95-nucleus size, is 1 + the number of sorted tokens whose cumulative
probability is below top_p. Tokens as probable as the teacher token are ranked by a rule, never by
whatever order a sort happens to leave them in:
- sort_position (official): the teacher token's position in a *stable* descending sort, i.e. equal
  tokens with a smaller id come first. The official script's torch.sort on CUDA orders ties so at
  every vocabulary size measured (docs/fidelity.md); on CPU torch.sort leaves them in no set order.
- strictly_greater: only strictly more probable tokens count (ties resolved in the teacher's favour).

Positions are processed in chunks so that a [chunk, vocab] float32 block is the largest tensor
alive: a 128k vocabulary over thousands of response positions never materializes at once.
The nucleus needs only the sorted prefix up to where the cumulative mass reaches top_p, so each
position's top k (a partial sort, several times cheaper than a full one) is taken first, and only
positions whose nucleus is larger than k are sorted in full: the result is the same as sorting
every position.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Tokens at or below this rank score count as "the scorer's top-1" in the official average.
TOP1_EPSILON = 1e-6
TIE_RULES = ("sort_position", "strictly_greater")


@dataclass(frozen=True)
class TokenStats:
    """Per-position results (1-D tensors of equal length)."""

    rank_score: Any  # float32: r/n inside the nucleus, 1.0 outside
    logprob: Any  # float32: log p(teacher token)
    rank: Any  # int64: the teacher token's rank under the tie rule
    nucleus: Any  # int64: nucleus size n


def token_stats(
    hidden_or_logits: Any,
    targets: Any,
    top_p: float = 0.95,
    chunk: int = 256,
    head: Callable[[Any], Any] | None = None,
    partial_sort_k: int = 1024,
    tie_rule: str = "sort_position",
) -> TokenStats:
    """Rank score, log-probability, rank and nucleus size for each position.

    `hidden_or_logits` is [N, H] hidden states when `head` (the LM head, hidden -> logits) is
    given, else [N, V] logits; `targets` is [N] teacher token ids. Logits of any dtype are
    upcast to float32 before the softmax. A descending sort per position (of its top
    `partial_sort_k` first, see the module doc; 0 sorts everything) gives the nucleus; `tie_rule`
    ranks the teacher token among equally probable ones (module doc).
    """
    import torch

    if tie_rule not in TIE_RULES:
        raise ValueError(f"unknown tie rule {tie_rule!r}; known: {TIE_RULES}")

    count = int(targets.shape[0])
    device = hidden_or_logits.device
    rank_score = torch.empty(count, dtype=torch.float32, device=device)
    logprob = torch.empty(count, dtype=torch.float32, device=device)
    rank = torch.empty(count, dtype=torch.int64, device=device)
    nucleus = torch.empty(count, dtype=torch.int64, device=device)
    with torch.inference_mode():
        for start in range(0, count, max(1, chunk)):
            stop = min(count, start + max(1, chunk))
            block = hidden_or_logits[start:stop]
            logits = (head(block) if head is not None else block).float()
            target = targets[start:stop].to(device).long().unsqueeze(1)
            probs = torch.softmax(logits, dim=-1)
            target_prob = probs.gather(1, target)
            inside = nucleus_sizes(probs, top_p, partial_sort_k)
            above = (probs > target_prob).sum(dim=-1)
            if tie_rule == "sort_position":
                token_ids = torch.arange(probs.shape[-1], device=device).unsqueeze(0)
                above += ((probs == target_prob) & (token_ids < target)).sum(dim=-1)
            nucleus[start:stop] = inside
            rank[start:stop] = above
            rank_score[start:stop] = torch.where(
                above < inside, above.float() / inside.float(), torch.ones_like(above, dtype=torch.float32)
            )
            logprob[start:stop] = (logits.gather(1, target) - torch.logsumexp(logits, dim=-1, keepdim=True)).squeeze(1)
    return TokenStats(rank_score=rank_score, logprob=logprob, rank=rank, nucleus=nucleus)


def nucleus_sizes(probs: Any, top_p: float, partial_sort_k: int = 1024) -> Any:
    """1 + the number of sorted probabilities whose cumulative sum is below top_p, per row (at most V)."""
    import torch

    vocab = probs.shape[-1]
    if not 0 < partial_sort_k < vocab:
        cumulative = torch.cumsum(torch.sort(probs, dim=-1, descending=True).values, dim=-1)
        return ((cumulative < top_p).sum(dim=-1) + 1).clamp(max=vocab)
    cumulative = torch.cumsum(torch.topk(probs, partial_sort_k, dim=-1, sorted=True).values, dim=-1)
    sizes = (cumulative < top_p).sum(dim=-1) + 1
    # Rows whose top k holds less than top_p have a larger nucleus: only those need the full sort.
    open_rows = cumulative[:, -1] < top_p
    if bool(open_rows.any()):
        sizes[open_rows] = nucleus_sizes(probs[open_rows], top_p, partial_sort_k=0)
    return sizes


def mean_rank_score(token_scores: list[float], exclude_top1: bool = True) -> float:
    """Sample score from token scores.

    With `exclude_top1` (the official rule) only tokens with s_t > 1e-6 are averaged, i.e. the
    tokens the scorer did not rank first; a sample whose every token is the scorer's top-1 scores
    0.0. Otherwise all tokens are averaged. An empty list scores 0.0 either way.
    """
    kept = [s for s in token_scores if s > TOP1_EPSILON] if exclude_top1 else list(token_scores)
    return sum(kept) / len(kept) if kept else 0.0
