"""The 12 SentiBench datasets: labels, task wording, and gold answers.

Classification gold is a lowercase label. Fine-grained examples carry two golds, one per scoring:
- `gold` (scoring: strict): lowercased tuples in the field order the metric compares (ASQP: aspect,
  category, opinion, sentiment; ATSA: term, polarity; ACSA: category, polarity; OpeNER: holder,
  target, expression, polarity with character spans), repeated pairs merged;
- `official_gold` (scoring: official): the tuples the official scorer compares, case kept and never
  de-duplicated (evaluation/official.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compeffdist.data.sentibench import DatasetError, read_split
from compeffdist.evaluation.official import gold_opinions

CLASSIFICATION = "classification"
TUPLES = "tuples"
OPENER = "opener"


@dataclass(frozen=True)
class DatasetSpec:
    key: str
    group: str  # bsa | msa | fsa
    task: str
    kind: str  # classification | tuples | opener
    labels: tuple[str, ...] = ()
    fields: tuple[str, ...] = ()  # JSON keys of one predicted item, in metric order


@dataclass
class Example:
    sentence: str
    gold: Any  # str label, or list of tuples
    target: str | None = None  # P-Stance
    gold_json: list[dict[str, str]] = field(default_factory=list)  # demo answer for fine-grained tasks
    official_gold: list[tuple] = field(default_factory=list)  # fine-grained gold as the official scorer has it


POLARITY2 = ("negative", "positive")
POLARITY3 = ("negative", "neutral", "positive")
ASQP_FIELDS = ("aspect_term", "aspect_category", "opinion", "sentiment")
ATSA_FIELDS = ("aspect_term", "sentiment")
ACSA_FIELDS = ("aspect_category", "sentiment")
SPECS = {
    spec.key: spec
    for spec in [
        DatasetSpec("sc/imdb", "bsa", "sentiment classification", CLASSIFICATION, POLARITY2),
        DatasetSpec("sc/yelp2", "bsa", "sentiment classification", CLASSIFICATION, POLARITY2),
        DatasetSpec("sc/sst2", "bsa", "sentiment classification", CLASSIFICATION, POLARITY2),
        DatasetSpec("sc/twitter", "bsa", "sentiment classification", CLASSIFICATION, POLARITY3),
        DatasetSpec("multifaced/irony18", "msa", "irony detection", CLASSIFICATION, ("irony", "non-irony")),
        DatasetSpec(
            "multifaced/tweeteval", "msa", "emotion classification", CLASSIFICATION,
            ("anger", "joy", "optimism", "sadness"),
        ),
        DatasetSpec("multifaced/pstance", "msa", "stance detection", CLASSIFICATION, ("against", "favor")),
        DatasetSpec(
            "multifaced/intimacy", "msa", "intimacy classification", CLASSIFICATION,
            ("not intimate", "moderately intimate", "highly intimate"),
        ),
        DatasetSpec("absa/asqp_rest16", "fsa", "aspect sentiment quad prediction", TUPLES, fields=ASQP_FIELDS),
        DatasetSpec(
            "absa/opener", "fsa", "structured sentiment analysis", OPENER,
            fields=("holder", "target", "sentiment_expression", "sentiment_polarity"),
        ),
        DatasetSpec("absa/atsa_rest16", "fsa", "aspect term sentiment analysis", TUPLES, fields=ATSA_FIELDS),
        DatasetSpec(
            "absa/acsa_rest16", "fsa", "aspect category sentiment analysis", TUPLES, fields=ACSA_FIELDS
        ),
    ]
}  # fmt: skip
ACSA_CATEGORIES = (
    "ambience general", "drinks prices", "drinks quality", "drinks style_options", "food prices", "food quality",
    "food style_options", "location general", "restaurant general", "restaurant miscellaneous", "restaurant prices",
    "service general",
)  # fmt: skip


def _classification(spec: DatasetSpec, record: dict[str, Any]) -> Example:
    label = str(record["label"]).strip().lower()
    if label not in spec.labels:
        raise ValueError(f"label {record['label']!r} is not one of {spec.labels}")
    return Example(record["sentence"], label, target=record.get("target"))


def _spans(entry: list[list[str]]) -> tuple[str, str]:
    """OpeNER keeps [texts, 'start:end' offsets]; several pieces are joined with AND, as SemEval-22 does."""
    texts, offsets = entry
    return " AND ".join(texts), ";".join(offsets)


def _unique(items: list[dict[str, str]]) -> list[dict[str, str]]:
    """Drop repeated pairs: rest16 annotates a term (or category) once per aspect category it touches, so
    the same (term, polarity) or (category, polarity) pair can appear twice and would count twice in recall."""
    return [dict(t) for t in dict.fromkeys(tuple(i.items()) for i in items)]


def _official_gold(spec: DatasetSpec, record: dict[str, Any]) -> list[tuple]:
    """The official gold: ASQP quads and ACSA pairs as annotated (ACSA category lowercased, '#' -> ' ');
    ATSA explicit terms merged only when term, polarity and offsets all repeat; OpeNER token sets."""
    if spec.key == "absa/asqp_rest16":
        return [(q["aspect"], q["category"], q["opinion"], q["sentiment"]) for q in record["quards"]]
    if spec.key == "absa/acsa_rest16":
        return [(a["category"].lower().replace("#", " "), a["polarity"]) for a in record["aspects"]]
    if spec.key == "absa/atsa_rest16":
        located = {
            (a["target"], a["polarity"], tuple(0 if a[end] is None else a[end] for end in ("from", "to")))
            for a in record["aspects"]
            if a["target"] not in ("NULL", None)
        }
        return [(term, polarity) for term, polarity, _ in sorted(located, key=repr)]  # order: for reproducibility
    return gold_opinions(record)


def _fine_grained(spec: DatasetSpec, record: dict[str, Any]) -> Example:
    sentence = record["sentence"]
    if spec.key == "absa/asqp_rest16":
        items = [
            {"aspect_term": q["aspect"], "aspect_category": q["category"], "opinion": q["opinion"],
             "sentiment": q["sentiment"]}
            for q in record["quards"]
        ]  # fmt: skip
    elif spec.key == "absa/atsa_rest16":
        explicit = [a for a in record["aspects"] if a["target"] != "NULL"]
        items = _unique([{"aspect_term": a["target"], "sentiment": a["polarity"]} for a in explicit])
    elif spec.key == "absa/acsa_rest16":
        items = _unique(
            [
                {"aspect_category": a["category"].lower().replace("#", " "), "sentiment": a["polarity"]}
                for a in record["aspects"]
            ]
        )
    else:  # opener
        items, spans = [], []
        for opinion in record["opinions"]:
            holder, holder_span = _spans(opinion["Source"])
            target, target_span = _spans(opinion["Target"])
            expression, expression_span = _spans(opinion["Polar_expression"])
            polarity = opinion["Polarity"].lower()
            items.append({"holder": holder or "NULL", "target": target or "NULL",
                          "sentiment_expression": expression, "sentiment_polarity": polarity})  # fmt: skip
            spans.append((holder_span, target_span, expression_span, polarity))
        return Example(sentence, spans, gold_json=items, official_gold=_official_gold(spec, record))
    gold = [tuple(str(item[f]).lower() for f in spec.fields) for item in items]
    return Example(sentence, gold, gold_json=items, official_gold=_official_gold(spec, record))


def load_examples(data_root: Path, key: str, split: str) -> list[Example]:
    """Read one split as Examples; a malformed record raises DatasetError naming file and item."""
    spec = SPECS[key]
    examples = []
    for index, record in enumerate(read_split(data_root, key, split)):
        try:
            if spec.kind == CLASSIFICATION:
                examples.append(_classification(spec, record))
            else:
                examples.append(_fine_grained(spec, record))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise DatasetError(f"{Path(data_root) / key / (split + '.json')}: item {index}: {exc!r}") from exc
    return examples
