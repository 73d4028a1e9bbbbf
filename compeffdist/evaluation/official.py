"""Fine-grained SentiBench scoring as the official `eval_sentibench` code computes it (`scoring: official`).

Every rule here reproduces a behaviour of the official scorer (fsa_json.py, parse_utils/*_json.py),
pinned in tests/unit/test_eval_official.py with numbers obtained by running the official functions:

- the answer is the (k+1)-th ``Output: [...]`` (non-greedy, to the first ``]``) in prompt + continuation;
  failing that, the text after the last ``Output:`` cut at its last ``}`` plus ``]``, so the complete
  items before a ``max_new_tokens`` cut are recovered; it is read with json.loads, then from its first
  ``[`` to its last ``]``;
- strings are compared case-sensitively after strip(); validity rules and the fate of a bad item
  differ per dataset (see `tuple_predictions`);
- gold tuples are never de-duplicated (ACSA keeps a category/polarity pair once per annotation; ATSA
  merges annotations of the same term at the same offsets, as the official label builder does);
- OpeNER strings are located with str.find and mapped to space-separated tokens the official way
  (`span_tokens`), and scored with the official weighted tuple F1 (`opener_scores`).

Where the official code crashes instead of scoring (a null field in ASQP or OpeNER items), the item is
dropped, as the surrounding code does with every other invalid item there (docs/fidelity.md).
"""

from __future__ import annotations

import json
import re
from collections.abc import Hashable, Sequence
from typing import Any

from compeffdist.evaluation.metrics import INVALID, Scores

ANSWER = re.compile(r"Output: (\[[\s\S]*?\])")
NO_ANSWER = "Error: Sixth output not found"  # the official extractor's marker; it parses to nothing
ATSA_POLARITIES = ("positive", "neutral", "negative", "conflict")
POLARITIES = ("positive", "neutral", "negative")
ASQP_KEYS = ("aspect_term", "aspect_category", "opinion", "sentiment")
OPENER_KEYS = ("holder", "target", "sentiment_expression", "sentiment_polarity")
# The official SemEval-22 script's guards against division by zero, kept for identical numbers.
EPSILON = 1e-16
F1_EPSILON = 1e-17


def extract_answer(text: str, k_shot: int) -> str:
    """The official answer string of `text` (prompt + continuation) for a prompt with `k_shot` demos."""
    matches = ANSWER.findall(text)
    if len(matches) >= k_shot + 1:
        return matches[k_shot]
    tail = text.split("Output:")[-1].strip()
    cut = tail.rfind("}")
    return tail[: cut + 1] + "]" if cut != -1 else NO_ANSWER


def load_answer(answer: str) -> list[Any] | None:
    """json.loads, then the span from the first '[' to the last ']'; None when neither parses to a list."""
    stripped = answer.strip()
    # find() gives -1 without a '[': the official slice then starts at the last character, as here.
    for candidate in (answer, stripped[stripped.find("[") : stripped.rfind("]") + 1]):
        try:
            value = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        # The extractor only hands over text that starts with '[': a non-list can only come from a
        # hand-made answer, and the official code would crash on it.
        return value if isinstance(value, list) else None
    return None


class _Unscorable(Exception):
    """An item on which the official ATSA/ACSA validation raises (caught there for the whole answer)."""


def _lookup(item: Any, keys: Sequence[str]) -> list[Any] | None:
    """Python's `key in item` / `item[key]` as the official validation uses them, on any JSON value."""
    if isinstance(item, dict):
        return [item[k] for k in keys] if all(k in item for k in keys) else None
    if isinstance(item, (str, list)):
        # `in` tests a substring / an element; when every key passes, indexing by a string raises.
        if all(k in item for k in keys):
            raise _Unscorable
        return None
    raise _Unscorable  # numbers and True support no `in`


def _stripped(values: list[Any]) -> list[str]:
    if not all(isinstance(v, str) for v in values):
        raise _Unscorable  # .strip() on a non-string
    return [v.strip() for v in values]


def _pair(key: str, item: Any, sentence: str) -> tuple[str, str] | None:
    """ATSA (term in sentence, 4 polarities) or ACSA (3 polarities, category unchecked); None when invalid."""
    first = "aspect_term" if key == "absa/atsa_rest16" else "aspect_category"
    values = _lookup(item, (first, "sentiment"))
    if values is None:
        return None
    name, polarity = _stripped(values)
    if key == "absa/atsa_rest16":
        if name not in sentence or polarity not in ATSA_POLARITIES:
            return None
    elif polarity not in POLARITIES:
        return None
    return name, polarity


def _four(item: Any, keys: Sequence[str], polarities: Sequence[str] | None) -> tuple[str, ...] | None:
    """ASQP / OpeNER: exactly the four keys, string fields; OpeNER also checks the polarity."""
    if not isinstance(item, dict) or len(item) != 4 or any(k not in item for k in keys):
        return None
    values = [item[k] for k in keys]
    if not all(isinstance(v, str) for v in values):
        return None  # the official code crashes on a non-string field: dropped like its other invalid items
    values = [v.strip() for v in values]
    if polarities is not None and values[3] not in polarities:
        return None
    return tuple(values)


def tuple_predictions(key: str, items: list[Any], sentence: str) -> list[Hashable]:
    """Predicted tuples of one answer, as the official per-dataset parser yields them.

    - ASQP: only items with exactly the 4 keys and string fields count; others are dropped. The
      sentiment is not checked. Tuple order: aspect, category, opinion, sentiment.
    - ATSA / ACSA: empty items are skipped; an invalid item (missing key, ATSA term not in the
      sentence, polarity outside the set) stays as a false positive. An item the official
      validation raises on (a non-string field, a number) turns every item of the answer, empty
      ones included, into a false positive: the official code then keeps the raw list.
    """
    if key == "absa/asqp_rest16":
        quads = [_four(item, ASQP_KEYS, None) for item in items]
        return [(q[0], q[1], q[2], q[3]) for q in quads if q is not None]
    try:
        pairs = [_pair(key, item, sentence) for item in items if item]
    except _Unscorable:
        return [INVALID] * len(items)
    return [INVALID if pair is None else pair for pair in pairs]


def tuple_scores(gold: Sequence[Sequence[Hashable]], predicted: Sequence[Sequence[Hashable]]) -> Scores:
    """Micro-F1 over (sentence, tuple) pairs; precision 1 without predictions, recall 1 without gold."""
    n_pred = n_gold = matched_pred = matched_gold = 0
    for gold_items, predicted_items in zip(gold, predicted, strict=True):
        n_pred += len(predicted_items)
        n_gold += len(gold_items)
        matched_pred += sum(p in gold_items for p in predicted_items)
        matched_gold += sum(g in predicted_items for g in gold_items)
    precision = matched_pred / n_pred if n_pred else 1.0
    recall = matched_gold / n_gold if n_gold else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return Scores(precision, recall, f1)


# OpeNER -----------------------------------------------------------------------------------------

Opinion = tuple[frozenset, frozenset, frozenset, str]


def space_token_spans(sentence: str) -> list[tuple[int, int]]:
    """(begin, end) of the tokens between single spaces, as nltk's SpaceTokenizer.span_tokenize gives them
    (an empty token between two spaces included, a leading space skipped)."""
    spans, left = [], 0
    while True:
        right = sentence.find(" ", left)
        if right == -1:
            if left != len(sentence):
                spans.append((left, len(sentence)))
            return spans
        if right != 0:
            spans.append((left, right))
        left = right + 1


def span_tokens(offsets: Sequence[str], spans: Sequence[tuple[int, int]]) -> frozenset[int]:
    """Token indices of 'begin:end' character offsets, the official way: a span opens at the token that
    begins exactly at `begin` (none if `begin` is inside a token) and runs until a token ends exactly at
    `end`, so a string found inside a longer token runs on to the end of the sentence."""
    indices = []
    for offset in offsets:
        begin, end = (int(x) for x in offset.split(":"))
        inside = False
        for index, (first, last) in enumerate(spans):
            inside = inside or first == begin
            if inside:
                indices.append(index)
            if last == end:
                inside = False
    return frozenset(indices)


def _find(sentence: str, text: str) -> list[str]:
    begin = sentence.find(text)
    return [] if begin == -1 else [f"{begin}:{begin + len(text)}"]


def predicted_opinion(sentence: str, quad: tuple[str, ...]) -> Opinion:
    """A validated (holder, target, expression, polarity) mapped to token sets as the official scorer does:
    the holder is searched whole ('NULL' is empty); target and expression are split on 'AND' (also inside
    words) and each piece searched; a piece not found is dropped; an empty piece is found at 0."""
    holder, target, expression, polarity = quad
    spans = space_token_spans(sentence)
    holder_offsets = [] if holder == "NULL" else _find(sentence, holder)
    target_offsets = [o for piece in target.split("AND") for o in _find(sentence, piece.strip())]
    expression_offsets = [o for piece in expression.split("AND") for o in _find(sentence, piece.strip())]
    return (
        span_tokens(holder_offsets, spans),
        span_tokens(target_offsets, spans),
        span_tokens(expression_offsets, spans),
        polarity.capitalize(),
    )


def gold_opinions(record: dict[str, Any]) -> list[Opinion]:
    """Gold OpeNER tuples from the record's character offsets, with the data's own polarity ('Positive')."""
    spans = space_token_spans(record["sentence"])
    return [
        (
            span_tokens(o["Source"][1], spans),
            span_tokens(o["Target"][1], spans),
            span_tokens(o["Polar_expression"][1], spans),
            o["Polarity"],
        )
        for o in record["opinions"]
    ]


def opinion_predictions(items: list[Any], sentence: str) -> list[Opinion]:
    """Valid items only (exactly 4 keys, string fields, lowercase polarity), mapped to token sets."""
    quads = [_four(item, OPENER_KEYS, POLARITIES) for item in items]
    return [predicted_opinion(sentence, q) for q in quads if q is not None]


def _placeholder(indices: frozenset) -> frozenset:
    return indices or frozenset(["_"])  # an empty holder or target matches another empty one


def _overlaps(a: Opinion, b: Opinion) -> bool:
    return bool(_placeholder(a[0]) & _placeholder(b[0]) and _placeholder(a[1]) & _placeholder(b[1]) and a[2] & b[2])


def _best_overlap(opinion: Opinion, others: Sequence[Opinion]) -> float:
    """The largest mean overlap ratio (over `opinion`'s own sizes) with any overlapping tuple, whatever its
    polarity: the official weighted score ignores polarity once some tuple with the same polarity overlaps."""
    holder, target, expression = _placeholder(opinion[0]), _placeholder(opinion[1]), opinion[2]
    best = 0.0
    for other in others:
        if _overlaps(opinion, other):
            ratio = (
                len(holder & _placeholder(other[0])) / len(holder)
                + len(target & _placeholder(other[1])) / len(target)
                + len(expression & other[2]) / len(expression)
            ) / 3
            best = max(best, ratio)
    return best


def _weighted(side: Sequence[Sequence[Opinion]], other: Sequence[Sequence[Opinion]]) -> float:
    credit, count = 0.0, 0
    for opinions, candidates in zip(side, other, strict=True):
        for opinion in opinions:
            count += 1
            if any(_overlaps(opinion, c) and opinion[3] == c[3] for c in candidates):
                credit += _best_overlap(opinion, candidates)
    return credit / (count + EPSILON)


def opener_scores(gold: Sequence[Sequence[Opinion]], predicted: Sequence[Sequence[Opinion]]) -> Scores:
    """The official weighted tuple F1 (SemEval-2022 Task 10 script as SentiBench ships it)."""
    precision = _weighted(predicted, gold)
    recall = _weighted(gold, predicted)
    return Scores(precision, recall, 2 * precision * recall / (precision + recall + F1_EPSILON))
