"""The batched scorer against plain per-record references on a tiny model (no Ray): rank scores equal
the per-token loop for every batch size, chunk size and layout; perplexity and IFD equal the model's
own loss; length and random need no model."""

from __future__ import annotations

import json
import math

import pytest

from compeffdist.config import DifficultyConfig, EngineConfig, ModelSpec
from compeffdist.difficulty.kernel import mean_rank_score
from compeffdist.difficulty.reference import reference_token_scores
from compeffdist.difficulty.scorer import DifficultyScorer, random_difficulty

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def rows(data_root):
    texts = [r["sentence"] for r in json.loads((data_root / "sc/twitter/train.json").read_text("utf-8-sig"))]
    out = []
    for i in range(10):
        instruction = f"Rate the sentiment from 1 to 5.\n\nInput: {texts[i][:150]}\nOutput: "
        out.append(
            {
                "record_id": f"r{i}",
                "messages": json.dumps([{"role": "user", "content": instruction}]),
                "instruction": instruction,
                "response": texts[50 + i][: 20 + 15 * i],  # lengths differ, so batches are padded
            }
        )
    return out


def _scorer(model_dir, batch_size=4, **difficulty) -> DifficultyScorer:
    config = DifficultyConfig(max_length=512, **difficulty)
    return DifficultyScorer(ModelSpec(name=str(model_dir)), config, EngineConfig(batch_size=batch_size), seed=3)


@pytest.mark.parametrize("chat_template", [True, False])
@pytest.mark.parametrize("exclude_top1", [True, False])
def test_rank_scores_equal_the_per_token_loop(tiny_model_dir, rows, chat_template, exclude_top1):
    reference = _scorer(tiny_model_dir, chat_template=chat_template, exclude_top1=exclude_top1)
    expected = {}
    for row in rows:
        text = reference.layout(row)
        expected[row["record_id"]] = mean_rank_score(reference_token_scores(reference.model, text), exclude_top1)
    assert len(set(expected.values())) == len(rows)
    for batch_size, chunk in ((1, 1), (3, 7), (16, 4096)):
        scorer = _scorer(
            tiny_model_dir, batch_size, chat_template=chat_template, exclude_top1=exclude_top1, position_chunk=chunk
        )
        results = scorer.score(rows)
        assert [r.record_id for r in results] == [r["record_id"] for r in rows]
        for result in results:
            assert result.difficulty == pytest.approx(expected[result.record_id], abs=1e-6)


def test_perplexity_and_ifd_equal_the_models_own_loss(tiny_model_dir, rows):
    import torch

    perplexity = _scorer(tiny_model_dir, metric="perplexity").score(rows)
    ifd = _scorer(tiny_model_dir, metric="ifd").score(rows)
    scorer = _scorer(tiny_model_dir, metric="perplexity")

    def loss_perplexity(text):
        ids = torch.tensor([text.input_ids])
        labels = torch.full_like(ids, -100)
        labels[0, text.response_start : text.response_end] = ids[0, text.response_start : text.response_end]
        with torch.no_grad():
            return math.exp(scorer.model(ids, labels=labels).loss.item())

    for row, ppl, ratio in zip(rows, perplexity, ifd, strict=True):
        conditional = loss_perplexity(scorer.layout(row))
        alone = loss_perplexity(scorer.layout(row, conditional=False))
        assert ppl.difficulty == pytest.approx(conditional, rel=1e-4)
        assert ratio.difficulty == pytest.approx(conditional / alone, rel=1e-4)


def test_length_and_random_need_no_model(tiny_model_dir, rows):
    length = _scorer(tiny_model_dir, metric="length")
    assert length.model is None
    results = length.score(rows)
    assert [r.difficulty for r in results] == [float(r.response_tokens) for r in results]
    assert results[-1].difficulty > results[0].difficulty
    random = _scorer(tiny_model_dir, metric="random").score(list(reversed(rows)))
    assert {r.record_id: r.difficulty for r in random} == {
        r["record_id"]: random_difficulty(3, r["record_id"]) for r in rows
    }


def test_truncated_and_malformed_records_are_flagged_not_scored(tiny_model_dir, rows):
    scorer = _scorer(tiny_model_dir)
    scorer.config.max_length = 40
    broken = {**rows[0], "record_id": "bad", "messages": "not json"}
    results = {r.record_id: r for r in scorer.score([rows[9], broken])}
    assert results["r9"].truncated and results["r9"].difficulty is None and results["r9"].response_tokens > 0
    assert results["bad"].error and "JSON" in results["bad"].error
