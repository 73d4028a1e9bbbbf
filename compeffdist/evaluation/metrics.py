"""SentiBench metrics (METHOD.md §5): classification, and the fine-grained metrics of `scoring: strict`.

- classification: macro-F1 (the reported number) and accuracy, from scikit-learn as the official
  script computes them (the same under either scoring);
- ASQP/ATSA/ACSA (strict): micro-F1 over exact-match lowercased tuples keyed by sentence; invalid items
  count as predictions; precision is 1 when nothing is predicted;
- OpeNER (strict): weighted tuple F1 over whitespace-token overlaps of located strings.

`scoring: official` (the default) uses evaluation/official.py instead for the fine-grained datasets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

INVALID = ("<invalid>",)  # stands for an item that failed its validity rule: a prediction that never matches


@dataclass(frozen=True)
class Scores:
    precision: float
    recall: float
    f1: float
    accuracy: float | None = None


def _f1(precision: float, recall: float) -> float:
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def classification_scores(gold: Sequence[str], predicted: Sequence[str]) -> Scores:
    """scikit-learn's macro-F1 (the reported number, as the official script computes it) and accuracy.

    Labels are those seen in gold or predictions; precision and recall are the macro averages with 0
    for a label never predicted (or never gold).
    """
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    gold, predicted = list(gold), list(predicted)
    if not gold:
        return Scores(0.0, 0.0, 0.0, 0.0)
    return Scores(
        float(precision_score(gold, predicted, average="macro", zero_division=0)),
        float(recall_score(gold, predicted, average="macro", zero_division=0)),
        float(f1_score(gold, predicted, average="macro", zero_division=0)),
        float(accuracy_score(gold, predicted)),
    )


def tuple_scores(gold: Sequence[Sequence[tuple]], predicted: Sequence[Sequence[tuple]]) -> Scores:
    """Micro-F1 of exact-match tuples; each sentence's predictions are matched against its own gold."""
    matched_pred = matched_gold = n_pred = n_gold = 0
    for gold_items, predicted_items in zip(gold, predicted, strict=True):
        gold_set = set(gold_items)
        pred_set = set(predicted_items)
        n_pred += len(predicted_items)
        n_gold += len(gold_items)
        matched_pred += sum(1 for p in predicted_items if p in gold_set)
        matched_gold += sum(1 for g in gold_items if g in pred_set)
    precision = matched_pred / n_pred if n_pred else 1.0
    recall = matched_gold / n_gold if n_gold else 0.0
    return Scores(precision, recall, _f1(precision, recall))


# OpeNER -----------------------------------------------------------------------------------------


def token_index_sets(sentence: str, spans: str) -> frozenset[int]:
    """Whitespace-token indices covered by 'start:end' character spans (';'-separated)."""
    if not spans:
        return frozenset()
    starts, position = [], 0
    for token in sentence.split(" "):
        starts.append((position, position + len(token)))
        position += len(token) + 1
    covered: set[int] = set()
    for span in spans.split(";"):
        begin, end = (int(x) for x in span.split(":"))
        covered.update(i for i, (s, e) in enumerate(starts) if s < end and e > begin and e > s)
    return frozenset(covered)


def locate(sentence: str, text: str) -> str:
    """Character spans of a predicted string: first occurrence of each 'AND'-joined piece ('' if absent)."""
    if not text or text.upper() == "NULL":
        return ""
    spans = []
    for piece in (p.strip() for p in text.split(" AND ")):
        start = sentence.find(piece) if piece else -1
        if start >= 0:
            spans.append(f"{start}:{start + len(piece)}")
    return ";".join(spans)


OpinionTuple = tuple[frozenset[int], frozenset[int], frozenset[int], str]


def _overlap(a: frozenset[int], b: frozenset[int], denominator: frozenset[int]) -> float | None:
    if not a and not b:
        return 1.0  # an empty holder/target on both sides is a match (the official placeholder)
    shared = len(a & b)
    if shared == 0:
        return None
    return shared / max(len(denominator), 1)


def _weighted(pred: OpinionTuple, gold: OpinionTuple, by_pred: bool) -> float:
    """Mean per-element overlap ratio if polarity agrees and all three elements overlap, else 0."""
    if pred[3] != gold[3]:
        return 0.0
    ratios = []
    for p, g in zip(pred[:3], gold[:3], strict=True):
        ratio = _overlap(p, g, p if by_pred else g)
        if ratio is None:
            return 0.0
        ratios.append(ratio)
    return sum(ratios) / 3


def opener_scores(gold: Sequence[Sequence[OpinionTuple]], predicted: Sequence[Sequence[OpinionTuple]]) -> Scores:
    """Weighted tuple F1: each prediction (gold) credited with its best weighted overlap."""
    wtp_p = wtp_r = 0.0
    n_pred = n_gold = 0
    for gold_items, predicted_items in zip(gold, predicted, strict=True):
        n_pred += len(predicted_items)
        n_gold += len(gold_items)
        for p in predicted_items:
            wtp_p += max((_weighted(p, g, by_pred=True) for g in gold_items), default=0.0)
        for g in gold_items:
            wtp_r += max((_weighted(p, g, by_pred=False) for p in predicted_items), default=0.0)
    precision = wtp_p / n_pred if n_pred else 1.0
    recall = wtp_r / n_gold if n_gold else 0.0
    return Scores(precision, recall, _f1(precision, recall))
