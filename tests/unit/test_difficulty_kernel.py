"""The vectorized rank-score kernel against hand-computed cases and a naive per-row implementation."""

from __future__ import annotations

import math

import pytest
import torch

from compeffdist.difficulty.kernel import mean_rank_score, token_stats

pytestmark = pytest.mark.unit


def _naive(logits: torch.Tensor, targets: torch.Tensor, top_p: float) -> list[float]:
    """The official per-token loop, with the stable sort CUDA's torch.sort performs (ties by ascending id)."""
    scores = []
    for row, target in zip(logits.float(), targets.tolist(), strict=True):
        probs = torch.softmax(row, dim=-1)
        ordered, ids = torch.sort(probs, descending=True, stable=True)
        nucleus = min(int((torch.cumsum(ordered, 0) < top_p).sum()) + 1, len(ordered))
        top = ids[:nucleus].tolist()
        scores.append(top.index(target) / nucleus if target in top else 1.0)
    return scores


def test_hand_computed_ranks_nucleus_and_scores():
    # p = [0.6, 0.3, 0.08, 0.02]: cumulative 0.6, 0.9 < 0.95, then 0.98 -> the nucleus holds 3 tokens.
    logits = torch.log(torch.tensor([[0.6, 0.3, 0.08, 0.02]] * 4))
    stats = token_stats(logits, torch.tensor([0, 1, 2, 3]), top_p=0.95)
    assert stats.nucleus.tolist() == [3, 3, 3, 3]
    assert stats.rank.tolist() == [0, 1, 2, 3]
    assert stats.rank_score.tolist() == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0])
    assert stats.logprob.tolist() == pytest.approx([math.log(p) for p in (0.6, 0.3, 0.08, 0.02)], rel=1e-5)


def test_a_peaked_distribution_has_a_nucleus_of_one():
    logits = torch.tensor([[10.0, 0.0, 0.0, 0.0]])
    stats = token_stats(logits, torch.tensor([1]))
    assert stats.nucleus.tolist() == [1] and stats.rank_score.tolist() == [1.0]


def test_matches_the_naive_loop_for_any_chunk_size():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(37, 300, generator=generator) * 3
    targets = torch.randint(0, 300, (37,), generator=generator)
    expected = _naive(logits, targets, 0.9)
    for chunk in (1, 5, 37, 1000):
        got = token_stats(logits, targets, top_p=0.9, chunk=chunk).rank_score.tolist()
        assert got == pytest.approx(expected, abs=1e-7)
    assert 0 < sum(s == 1.0 for s in expected) < len(expected)  # both branches are exercised


def test_hidden_states_through_a_head_equal_logits_and_bf16_is_upcast():
    generator = torch.Generator().manual_seed(1)
    head = torch.nn.Linear(16, 64, bias=False)
    hidden = torch.randn(20, 16, generator=generator)
    targets = torch.randint(0, 64, (20,), generator=generator)
    with torch.no_grad():
        direct = token_stats(head(hidden), targets, chunk=3)
    through = token_stats(hidden, targets, chunk=7, head=head)
    assert through.rank_score.tolist() == pytest.approx(direct.rank_score.tolist(), abs=1e-6)
    half = token_stats(hidden.bfloat16(), targets, head=head.bfloat16())
    assert half.rank_score.dtype == torch.float32 and half.logprob.dtype == torch.float32
    assert torch.isfinite(half.logprob).all()


def test_tie_rules():
    # Three equally probable tokens (nucleus 3). sort_position (official): token 2 sits behind tokens 0 and 1
    # in a stable descending sort; strictly_greater: no token is strictly more probable.
    logits = torch.tensor([[1.0, 1.0, 1.0, -5.0]] * 2)
    official = token_stats(logits, torch.tensor([2, 0]))
    assert official.nucleus.tolist() == [3, 3]
    assert official.rank.tolist() == [2, 0] and official.rank_score.tolist() == pytest.approx([2 / 3, 0.0])
    favourable = token_stats(logits, torch.tensor([2, 0]), tie_rule="strictly_greater")
    assert favourable.rank.tolist() == [0, 0] and favourable.rank_score.tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="tie rule"):
        token_stats(logits, torch.tensor([2, 0]), tie_rule="sorted")


def test_sort_position_equals_the_stable_sort_on_tied_bf16_logits():
    # bf16 logits tie often: the rank is the stable-sort position at every position, any chunk size.
    generator = torch.Generator().manual_seed(3)
    logits = (torch.randn(64, 2000, generator=generator) * 2).bfloat16()
    probs = torch.softmax(logits.float(), dim=-1)
    targets = torch.argsort(torch.rand(64, 2000, generator=generator), dim=-1)[:, 0]
    tied = [(probs[i] == probs[i, t]).sum().item() > 1 for i, t in enumerate(targets.tolist())]
    assert sum(tied) > 30  # most teacher tokens share their probability with another token
    expected = _naive(logits, targets, 0.95)
    for chunk in (7, 64):
        got = token_stats(logits, targets, chunk=chunk, partial_sort_k=0).rank_score.tolist()
        assert got == pytest.approx(expected, abs=1e-7)


def test_empty_input_gives_empty_stats():
    stats = token_stats(torch.zeros(0, 8), torch.zeros(0, dtype=torch.long))
    assert stats.rank_score.shape == (0,)


def test_sample_score_excludes_top1_tokens_by_default():
    scores = [0.0, 0.0, 0.5, 1.0]
    assert mean_rank_score(scores) == pytest.approx(0.75)
    assert mean_rank_score(scores, exclude_top1=False) == pytest.approx(0.375)
    assert mean_rank_score([0.0, 0.0]) == 0.0
    assert mean_rank_score([]) == 0.0
    assert mean_rank_score([5e-7, 0.2]) == pytest.approx(0.2)  # at or below 1e-6 counts as top-1


def test_partial_sort_gives_the_full_sort_nucleus():
    generator = torch.Generator().manual_seed(2)
    # Mixed rows: peaked ones (nucleus inside the top k) and flat ones (nucleus beyond it).
    logits = torch.cat([torch.randn(20, 500, generator=generator) * 8, torch.randn(20, 500, generator=generator)])
    targets = torch.randint(0, 500, (40,), generator=generator)
    full = token_stats(logits, targets, partial_sort_k=0)
    for k in (1, 16, 499):
        partial = token_stats(logits, targets, partial_sort_k=k)
        assert partial.nucleus.tolist() == full.nucleus.tolist()
        assert partial.rank_score.tolist() == full.rank_score.tolist()
    assert full.nucleus.min() < 16 < full.nucleus.max()
