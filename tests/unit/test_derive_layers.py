"""Deriving a smaller student from a model's decoder layers: which layers, and that the weights are those layers'."""

from __future__ import annotations

import json

import pytest

from compeffdist.models.registry import ModelResolutionError, derived_layer_indices


@pytest.mark.parametrize(
    ("total", "layers", "choice", "expected"),
    [
        (30, 4, "first", [0, 1, 2, 3]),
        (30, 4, "spread", [0, 10, 19, 29]),
        (30, 8, "spread", [0, 4, 8, 12, 17, 21, 25, 29]),
        (30, 1, "spread", [29]),
        (30, 5, "ends", [0, 1, 2, 28, 29]),
        (30, 4, "ends", [0, 1, 28, 29]),
        (6, 5, "spread", [0, 1, 2, 4, 5]),
    ],
)
def test_layer_choice(total, layers, choice, expected):
    kept = derived_layer_indices(total, layers, choice)
    assert kept == expected
    assert len(set(kept)) == layers and kept == sorted(kept)


@pytest.mark.parametrize("layers", [0, 30, 31])
def test_keeping_no_layer_or_every_layer_is_refused(layers):
    with pytest.raises(ModelResolutionError, match="derive_layers"):
        derived_layer_indices(30, layers, "first")


def test_derived_model_holds_the_chosen_layers(tmp_path, monkeypatch, data_root):
    import torch
    from transformers import AutoModelForCausalLM

    from compeffdist.config import ModelSpec
    from compeffdist.models.registry import resolve_model
    from compeffdist.models.tiny import build_tiny_llama

    monkeypatch.setenv("COMPEFFDIST_CACHE", str(tmp_path / "cache"))
    texts = [r["sentence"] for r in json.loads((data_root / "sc/yelp2/train.json").read_text("utf-8-sig"))[:50]]
    base = build_tiny_llama(tmp_path / "base", texts, num_layers=5)
    original = AutoModelForCausalLM.from_pretrained(base)
    folders = {}
    for choice in ("first", "spread", "ends"):
        folder = resolve_model(ModelSpec(name=str(base), derive_layers=3, derive_layer_choice=choice))
        folders[choice] = folder
        derived = AutoModelForCausalLM.from_pretrained(folder)
        assert derived.config.num_hidden_layers == 3
        for position, index in enumerate(derived_layer_indices(5, 3, choice)):
            mine = derived.model.layers[position].mlp.down_proj.weight
            assert torch.equal(mine, original.model.layers[index].mlp.down_proj.weight), (choice, position)
        assert torch.equal(derived.lm_head.weight, original.lm_head.weight)
    assert len(set(folders.values())) == 3  # each choice is cached under its own key
