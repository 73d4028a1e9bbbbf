"""Parse fine-grained answers from the generated continuation only, with SentiBench's validity rules."""

from __future__ import annotations

import json
from typing import Any

from compeffdist.evaluation.datasets import DatasetSpec
from compeffdist.evaluation.metrics import INVALID, locate
from compeffdist.evaluation.prompts import STOP

ATSA_POLARITIES = {"positive", "neutral", "negative", "conflict"}
POLARITIES = {"positive", "neutral", "negative"}


def extract_json_list(continuation: str) -> list[Any] | None:
    """The first JSON array in the continuation (cut at the next demo marker); None if there is none."""
    text = continuation.split(STOP, 1)[0]
    start = text.find("[")
    while start >= 0:
        end = text.find("]", start)
        while end >= 0:
            try:
                value = json.loads(text[start : end + 1])
            except json.JSONDecodeError:
                end = text.find("]", end + 1)
                continue
            if isinstance(value, list):
                return value
            end = text.find("]", end + 1)
        start = text.find("[", start + 1)
    return None


def _item_tuple(spec: DatasetSpec, item: Any, sentence: str) -> tuple:
    """One predicted item as a metric tuple, or INVALID when it breaks the dataset's rule."""
    if not isinstance(item, dict):
        return INVALID
    if spec.key == "absa/asqp_rest16" and len(item) != 4:
        return INVALID
    if any(not isinstance(item.get(f), str) for f in spec.fields):
        return INVALID
    values = {f: item[f].strip() for f in spec.fields}
    if spec.key == "absa/atsa_rest16" and (
        values["aspect_term"] not in sentence or values["sentiment"].lower() not in ATSA_POLARITIES
    ):
        return INVALID
    if spec.key == "absa/acsa_rest16" and values["sentiment"].lower() not in POLARITIES:
        return INVALID
    return tuple(values[f].lower() for f in spec.fields)


def parse_tuples(spec: DatasetSpec, continuation: str, sentence: str) -> tuple[list[tuple], bool]:
    """(predicted tuples, output_was_valid). An unparseable output predicts nothing and counts as invalid."""
    items = extract_json_list(continuation)
    if items is None:
        return [], False
    return [_item_tuple(spec, item, sentence) for item in items], True


def parse_opinions(continuation: str, sentence: str) -> tuple[list[tuple], bool]:
    """OpeNER predictions as (holder spans, target spans, expression spans, polarity) for the weighted metric."""
    from compeffdist.evaluation.metrics import token_index_sets

    items = extract_json_list(continuation)
    if items is None:
        return [], False
    opinions = []
    for item in items:
        keys = ("holder", "target", "sentiment_expression", "sentiment_polarity")
        if not isinstance(item, dict) or any(not isinstance(item.get(k), str) for k in keys):
            opinions.append((frozenset({-1}), frozenset({-1}), frozenset({-1}), "<invalid>"))
            continue
        spans = [token_index_sets(sentence, locate(sentence, item[k])) for k in keys[:3]]
        opinions.append((*spans, item["sentiment_polarity"].strip().lower()))
    return opinions, True
