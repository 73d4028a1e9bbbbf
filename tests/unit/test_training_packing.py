"""Packing: document boundaries, position-id restarts, collation, and per-document attention in the model."""

from __future__ import annotations

import numpy as np
import pytest

from compeffdist.training.examples import IGNORE_INDEX, TokenizedExample
from compeffdist.training.packing import collate, pack_sequences, shuffled, single_sequences

pytestmark = pytest.mark.unit


def _example(record_id: str, n: int, start: int = 10) -> TokenizedExample:
    ids = list(range(start, start + n))
    return TokenizedExample(record_id, ids, [IGNORE_INDEX] * (n // 2) + ids[n // 2 :], truncated=False)


def test_packing_respects_max_len_and_keeps_documents_whole():
    examples = [_example(f"r{i}", n, start=100 * i) for i, n in enumerate([5, 4, 3, 6, 2])]
    rows = pack_sequences(examples, max_seq_len=9)
    assert [len(r["input_ids"]) for r in rows] == [9, 9, 2]
    assert rows[0]["position_ids"] == [0, 1, 2, 3, 4, 0, 1, 2, 3]
    assert rows[1]["position_ids"] == [0, 1, 2, 0, 1, 2, 3, 4, 5]
    flat = [t for r in rows for t in r["input_ids"]]
    assert flat == [t for e in examples for t in e.input_ids]  # nothing dropped, order kept
    assert [t for r in rows for t in r["labels"]] == [t for e in examples for t in e.labels]


def test_packing_rejects_an_overlong_document():
    with pytest.raises(ValueError, match="r0"):
        pack_sequences([_example("r0", 12)], max_seq_len=8)


def test_shuffle_depends_on_ids_and_seed_not_arrival_order():
    examples = [_example(f"r{i}", 3) for i in range(20)]
    a = [e.record_id for e in shuffled(examples, 1)]
    assert a == [e.record_id for e in shuffled(list(reversed(examples)), 1)]
    assert a != [e.record_id for e in shuffled(examples, 2)]


def test_collate_packed_pads_as_a_separate_document():
    rows = pack_sequences([_example("a", 3), _example("b", 2), _example("c", 4)], max_seq_len=5)
    batch = {k: np.array([np.array(r[k]) for r in rows], dtype=object) for k in rows[0]}
    tensors, real = collate(batch, pad_token_id=0, packed=True)
    assert "attention_mask" not in tensors and real == 9
    assert tensors["input_ids"].shape == (2, 5)
    assert tensors["position_ids"][1].tolist() == [0, 1, 2, 3, 0]
    assert tensors["labels"][1, 4].item() == IGNORE_INDEX and tensors["input_ids"][1, 4].item() == 0


def test_collate_unpacked_has_padding_mask():
    rows = single_sequences([_example("a", 3), _example("b", 5)])
    batch = {k: np.array([np.array(r[k]) for r in rows], dtype=object) for k in rows[0]}
    tensors, real = collate(batch, pad_token_id=7, packed=False)
    assert real == 8 and tensors["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert tensors["input_ids"][0].tolist()[3:] == [7, 7]


def test_packed_documents_do_not_attend_to_each_other(tiny_model_dir):
    """Logits of a packed row equal each document's logits computed alone (block-diagonal causal mask).

    Needs use_cache=False: with a KV cache transformers does not look for packed position ids.
    """
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    docs = [_example("a", 7, start=20), _example("b", 5, start=40)]
    rows = pack_sequences(docs, max_seq_len=16)
    assert len(rows) == 1
    batch = {k: np.array([np.array(rows[0][k])], dtype=object) for k in rows[0]}
    tensors, _ = collate(batch, pad_token_id=0, packed=True)
    with torch.no_grad():
        packed = model(**tensors, use_cache=False).logits[0]
        alone = [model(input_ids=torch.tensor([d.input_ids])).logits[0] for d in docs]
    torch.testing.assert_close(packed, torch.cat(alone), atol=1e-5, rtol=1e-4)
    # the same row without position restarts leaks context from document a into document b
    with torch.no_grad():
        leaky = model(input_ids=tensors["input_ids"]).logits[0]
    assert not torch.allclose(leaky[7:], alone[1], atol=1e-4)
