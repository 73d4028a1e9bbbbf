"""`scoring: official`: the fine-grained SentiBench metrics equal the official eval_sentibench scorer's.

The expected numbers were obtained by running the official functions (fsa_json.extract_output,
parse_utils/{atsa,acsa,asqp,ssa}_json.Result_*.parse_from + cal_metric, with the official label
builders make_*_seq for the gold) on exactly these records and continuations, outside this repository;
they are written here as numbers. Each continuation exercises one official behaviour (comments).
On 40 random batches of 25 real test records per dataset, with perturbed, cut and run-on answers, the
two implementations agreed to the last digit (docs/fidelity.md).
"""

from __future__ import annotations

import pytest

from compeffdist.evaluation import official
from compeffdist.evaluation.datasets import SPECS, _fine_grained
from compeffdist.evaluation.metrics import INVALID

pytestmark = pytest.mark.unit

# Two demos precede every test example: the official extractor must skip their answers.
PROMPT = (
    'Instruction.\n\nSentence: demo one\nOutput: [\n  {\n    "x": "y"\n  }\n]\n\n'
    "Sentence: demo two\nOutput: []\n\nSentence: {sentence}\nOutput:"
)
K = 2

ATSA_SENTENCE = "The Pizza was great but the service was slow and the pizza crust too ."
ATSA_RECORDS = [
    {
        "sentence": ATSA_SENTENCE,
        "aspects": [
            {"from": "4", "to": "9", "target": "Pizza", "category": "FOOD#QUALITY", "polarity": "positive"},
            {"from": "4", "to": "9", "target": "Pizza", "category": "FOOD#STYLE_OPTIONS", "polarity": "positive"},
            {"from": "28", "to": "35", "target": "service", "category": "SERVICE#GENERAL", "polarity": "negative"},
            {"from": "53", "to": "58", "target": "pizza", "category": "FOOD#QUALITY", "polarity": "negative"},
            {"from": "0", "to": "0", "target": "NULL", "category": "RESTAURANT#GENERAL", "polarity": "neutral"},
        ],
    },
    {
        "sentence": "Great food , great food .",
        "aspects": [
            {"from": "6", "to": "10", "target": "food", "category": "FOOD#QUALITY", "polarity": "positive"},
            {"from": "19", "to": "23", "target": "food", "category": "FOOD#QUALITY", "polarity": "positive"},
        ],
    },
    {
        "sentence": "Nice place .",
        "aspects": [
            {"from": "5", "to": "10", "target": "place", "category": "AMBIENCE#GENERAL", "polarity": "positive"}
        ],
    },
    {
        "sentence": "Slow waiter .",
        "aspects": [
            {"from": "5", "to": "11", "target": "waiter", "category": "SERVICE#GENERAL", "polarity": "negative"}
        ],
    },
    {
        "sentence": "Cheap and good .",
        "aspects": [{"from": "0", "to": "0", "target": "NULL", "category": "FOOD#PRICES", "polarity": "positive"}],
    },
]
ATSA_CONTINUATIONS = [
    # case: "pizza" (lowercase) is the second mention, "Pizza" the first; an extra key is accepted;
    # a capitalized polarity, a term not in the sentence and a missing key are false positives; {} is skipped
    ' [{"aspect_term": "pizza", "sentiment": "negative"}, {"aspect_term": "Pizza", "sentiment": "Positive"}, '
    '{"aspect_term": "service ", "sentiment": "negative", "opinion": "slow"}, {"aspect_term": "dessert", '
    '"sentiment": "negative"}, {"sentiment": "negative"}, {}]\n\nSentence: next\nOutput: []',
    # the same term twice: the gold keeps both mentions, one predicted pair matches both
    ' [{"aspect_term": "food", "sentiment": "positive"}]',
    # a null field: the official parser keeps the raw list, so every item (the good one too) is a false positive
    ' [{"aspect_term": "place", "sentiment": "positive"}, {"aspect_term": null, "sentiment": "positive"}, {}]',
    # cut at max_new_tokens: the complete first item is recovered
    ' [\n  {\n    "aspect_term": "waiter",\n    "sentiment": "negative"\n  },\n  {\n    "aspect_term": "Slo',
    # prose first, then the model writes a next demo whose answer the official extractor takes
    ' none\n\nSentence: Cheap and good .\nOutput: [{"aspect_term": "good", "sentiment": "positive"}]',
]

ACSA_RECORDS = [
    {
        "sentence": "Great sushi and great rolls but rude staff .",
        "aspects": [
            {"from": "6", "to": "11", "target": "sushi", "category": "FOOD#QUALITY", "polarity": "positive"},
            {"from": "22", "to": "27", "target": "rolls", "category": "FOOD#QUALITY", "polarity": "positive"},
            {"from": "37", "to": "42", "target": "staff", "category": "SERVICE#GENERAL", "polarity": "negative"},
        ],
    },
    {
        "sentence": "Overpriced .",
        "aspects": [
            {"from": "0", "to": "0", "target": "NULL", "category": "RESTAURANT#PRICES", "polarity": "negative"}
        ],
    },
    {
        "sentence": "Loved it .",
        "aspects": [
            {"from": "0", "to": "0", "target": "NULL", "category": "RESTAURANT#GENERAL", "polarity": "positive"}
        ],
    },
]
ACSA_CONTINUATIONS = [
    # the gold pair (food quality, positive) appears twice and both count as found; "Service general" misses by case
    ' [{"aspect_category": "food quality", "sentiment": "positive"}, '
    '{"aspect_category": "Service general", "sentiment": "negative"}]',
    # conflict is no ACSA polarity: a false positive; an unknown category is no match but valid
    ' [{"aspect_category": "restaurant prices", "sentiment": "conflict"}, '
    '{"aspect_category": "food general", "sentiment": "negative"}]',
    # a number item makes the official validation raise: both items are false positives
    ' [{"aspect_category": "restaurant general", "sentiment": "positive"}, 7]',
]

ASQP_RECORDS = [
    {
        "sentence": "The Pizza was tasty but the staff was rude .",
        "quards": [
            {"aspect": "Pizza", "category": "food quality", "sentiment": "positive", "opinion": "tasty"},
            {"aspect": "staff", "category": "service general", "sentiment": "negative", "opinion": "rude"},
        ],
    },
    {
        "sentence": "Terrible place .",
        "quards": [
            {"aspect": "place", "category": "restaurant general", "sentiment": "negative", "opinion": "Terrible"},
            {"aspect": "place", "category": "restaurant general", "sentiment": "negative", "opinion": "Terrible"},
        ],
    },
    {
        "sentence": "Fine wine , fair prices .",
        "quards": [
            {"aspect": "wine", "category": "drinks quality", "sentiment": "positive", "opinion": "Fine"},
            {"aspect": "NULL", "category": "restaurant prices", "sentiment": "positive", "opinion": "fair"},
        ],
    },
]
ASQP_CONTINUATIONS = [
    # "pizza" misses by case; a fifth key and a missing key drop the item (no false positive)
    ' [{"aspect_term": "pizza", "aspect_category": "food quality", "opinion": "tasty", "sentiment": "positive"}, '
    '{"aspect_term": "staff", "aspect_category": "service general", "opinion": "rude", "sentiment": "negative"}, '
    '{"aspect_term": "staff", "aspect_category": "service general", "opinion": "rude", "sentiment": "negative", '
    '"x": "y"}, {"aspect_term": "staff", "opinion": "rude", "sentiment": "negative", "aspect_category ": "z"}]',
    # the duplicated gold quad is counted twice in recall; a non-string sentiment is dropped
    ' [{"aspect_term": "place", "aspect_category": "restaurant general", "opinion": "Terrible", '
    '"sentiment": "negative"}, {"aspect_term": "place", "aspect_category": "restaurant general", '
    '"opinion": "Terrible", "sentiment": 1}]',
    # cut at max_new_tokens after one complete quad
    ' [\n  {\n    "aspect_term": "wine",\n    "aspect_category": "drinks quality",\n    "opinion": "Fine",\n'
    '    "sentiment": "positive"\n  },\n  {\n    "aspect_term": "NULL",\n    "aspect_cat',
]
# A null field: the official code crashes; the item is dropped like every other invalid ASQP item.
ASQP_NULL_CONTINUATION = (
    ' [{"aspect_term": null, "aspect_category": "drinks quality", "opinion": "Fine", "sentiment": "positive"}, '
    '{"aspect_term": "wine", "aspect_category": "drinks quality", "opinion": "Fine", "sentiment": "positive"}]'
)

OPENER_RECORDS = [
    {
        "sent_id": "o1",
        "sentence": "The staff were nicely helpful and the room was clean but noisy .",
        "opinions": [
            {
                "Source": [[], []],
                "Target": [["The staff"], ["0:9"]],
                "Polar_expression": [["nicely helpful"], ["15:29"]],
                "Polarity": "Positive",
                "Intensity": "Standard",
            },
            {
                "Source": [[], []],
                "Target": [["the room"], ["34:42"]],
                "Polar_expression": [["clean"], ["47:52"]],
                "Polarity": "Positive",
                "Intensity": "Standard",
            },
            {
                "Source": [[], []],
                "Target": [["the room"], ["34:42"]],
                "Polar_expression": [["noisy"], ["57:62"]],
                "Polarity": "Negative",
                "Intensity": "Standard",
            },
        ],
    },
    {
        "sent_id": "o2",
        "sentence": "We loved the pool and the bar .",
        "opinions": [
            {
                "Source": [["We"], ["0:2"]],
                "Target": [["the pool", "the bar"], ["9:17", "22:29"]],
                "Polar_expression": [["loved"], ["3:8"]],
                "Polarity": "Positive",
                "Intensity": "Strong",
            }
        ],
    },
    {"sent_id": "o3", "sentence": "Just a hotel .", "opinions": []},
    {
        "sent_id": "o4",
        "sentence": "I hated the view .",
        "opinions": [
            {
                "Source": [["I"], ["0:1"]],
                "Target": [["the view"], ["8:16"]],
                "Polar_expression": [["hated"], ["2:7"]],
                "Polarity": "Negative",
                "Intensity": "Standard",
            }
        ],
    },
]
OPENER_CONTINUATIONS = [
    # "nice" begins the token "nicely": the span runs to the end of the sentence; "staff" alone; polarity kept
    # lowercase; the room/noisy tuple matches the negative gold but its weight is the best overlap of any tuple;
    # "Positive" (capitalized) and a fifth key drop the item
    ' [{"holder": "NULL", "target": "staff", "sentiment_expression": "nice", "sentiment_polarity": "positive"}, '
    '{"holder": "NULL", "target": "room", "sentiment_expression": "clean but noisy", '
    '"sentiment_polarity": "negative"}, '
    '{"holder": "NULL", "target": "room", "sentiment_expression": "clean", "sentiment_polarity": "Positive"}, '
    '{"holder": "NULL", "target": "room", "sentiment_expression": "clean", "sentiment_polarity": "positive", "x": 1}]',
    # "AND"-joined targets; an empty holder is found at 0 and covers every token
    ' [{"holder": "", "target": "the pool AND the bar", "sentiment_expression": "loved", '
    '"sentiment_polarity": "positive"}, {"holder": "We", "target": "pool", "sentiment_expression": "oved", '
    '"sentiment_polarity": "positive"}]',
    # the all-NULL answer of a sentence without opinions: NULL is no polarity, the item is dropped
    ' [{"holder": "NULL", "target": "NULL", "sentiment_expression": "NULL", "sentiment_polarity": "NULL"}]',
    # cut at max_new_tokens: the complete first opinion is recovered
    ' [\n  {\n    "holder": "I",\n    "target": "the view",\n    "sentiment_expression": "hated",\n'
    '    "sentiment_polarity": "negative"\n  },\n  {\n    "holder": "I",\n    "tar',
]
# A null holder: the official code crashes; the item is dropped.
OPENER_NULL_CONTINUATION = (
    ' [{"holder": null, "target": "the view", "sentiment_expression": "hated", "sentiment_polarity": "negative"}]'
)


def _score(key: str, records: list[dict], continuations: list[str]) -> tuple[float, float, float]:
    spec = SPECS[key]
    examples = [_fine_grained(spec, r) for r in records]
    answers = [
        official.load_answer(official.extract_answer(PROMPT.replace("{sentence}", e.sentence) + c, K))
        for e, c in zip(examples, continuations, strict=True)
    ]
    golds = [e.official_gold for e in examples]
    if key == "absa/opener":
        predicted = [official.opinion_predictions(a or [], e.sentence) for a, e in zip(answers, examples, strict=True)]
        scores = official.opener_scores(golds, predicted)
    else:
        predicted = [
            official.tuple_predictions(key, a or [], e.sentence) for a, e in zip(answers, examples, strict=True)
        ]
        scores = official.tuple_scores(golds, predicted)
    return scores.precision, scores.recall, scores.f1


# (precision, recall, f1) per single record, then for all records of the dataset together.
EXPECTED = {
    "absa/atsa_rest16": (
        ATSA_RECORDS, ATSA_CONTINUATIONS,
        [(0.4, 2 / 3, 0.5), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (0.0, 1.0, 0.0)],
        (0.36363636363636365, 0.7142857142857143, 0.48192771084337355),
    ),
    "absa/acsa_rest16": (
        ACSA_RECORDS, ACSA_CONTINUATIONS,
        [(0.5, 2 / 3, 0.5714285714285715), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)],
        (0.16666666666666666, 0.4, 0.23529411764705882),
    ),
    "absa/asqp_rest16": (
        ASQP_RECORDS, ASQP_CONTINUATIONS,
        [(0.5, 0.5, 0.5), (1.0, 1.0, 1.0), (1.0, 0.5, 2 / 3)],
        (0.75, 2 / 3, 0.7058823529411765),
    ),
    "absa/opener": (
        OPENER_RECORDS, OPENER_CONTINUATIONS,
        [(0.7555555555555555, 0.5555555555555556, 0.64030131826742), (0.3541666666666667, 1.0, 0.5230769230769231),
         (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)],
        (0.643888888888889, 0.7333333333333334, 0.6857066021245126),
    ),
}  # fmt: skip


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_fine_grained_metrics_equal_the_official_scorer(key):
    records, continuations, per_record, together = EXPECTED[key]
    for index, expected in enumerate(per_record):
        got = _score(key, records[index : index + 1], continuations[index : index + 1])
        assert got == pytest.approx(expected, abs=1e-12), (key, index)
    assert _score(key, records, continuations) == pytest.approx(together, abs=1e-12)


def test_a_null_field_drops_the_item_where_the_official_code_crashes():
    # The official ASQP and OpeNER parsers raise AttributeError on a null field; with the item dropped, the
    # official functions give these numbers (the good quad is still found; the only opinion is lost).
    assert _score("absa/asqp_rest16", ASQP_RECORDS[2:3], [ASQP_NULL_CONTINUATION]) == pytest.approx((1.0, 0.5, 2 / 3))
    assert _score("absa/opener", OPENER_RECORDS[3:4], [OPENER_NULL_CONTINUATION]) == (0.0, 0.0, 0.0)


def test_official_answer_extraction():
    prompt = PROMPT.replace("{sentence}", "s")
    # the (k+1)-th 'Output: [...]', non-greedy to the first ']'
    assert official.extract_answer(prompt + ' [{"a": "b"}] tail ]', K) == '[{"a": "b"}]'
    # a cut answer: everything after the last 'Output:' up to its last '}', closed with ']'
    assert official.extract_answer(prompt + ' [{"a": "b"}, {"c": "d"}, {"e', K) == '[{"a": "b"}, {"c": "d"}]'
    assert official.extract_answer(prompt + " nothing", K) == official.NO_ANSWER
    assert official.load_answer(official.NO_ANSWER) is None
    assert official.load_answer('note: [{"a": "b"}] done') == [{"a": "b"}]  # first '[' to last ']'


def test_official_items_per_dataset():
    sentence = "The pizza was great ."
    items = [{"aspect_term": "pizza", "sentiment": "positive", "extra": "kept"}, {"aspect_term": "Pizza",
             "sentiment": "positive"}, {}, {"sentiment": "negative"}]  # fmt: skip
    # ATSA: the extra key is accepted, a term not in the sentence (case-sensitive) and a missing key are false
    # positives, an empty item is skipped
    assert official.tuple_predictions("absa/atsa_rest16", items, sentence) == [("pizza", "positive"), INVALID, INVALID]
    # a number item makes the official validation raise: the raw list, empty item included, is all false positives
    assert official.tuple_predictions("absa/atsa_rest16", [*items, 3], sentence) == [INVALID] * 5
    # ASQP drops what ATSA counts: an item without exactly the four keys
    quad = {"aspect_term": "pizza", "aspect_category": "food quality", "opinion": "great", "sentiment": "Positive"}
    assert official.tuple_predictions("absa/asqp_rest16", [quad, {**quad, "x": "y"}, {}], sentence) == [
        ("pizza", "food quality", "great", "Positive")
    ]


def test_official_span_mapping_matches_nltk_space_tokens():
    # nltk's SpaceTokenizer.span_tokenize on the same strings (run outside this repository)
    assert official.space_token_spans("a  b") == [(0, 1), (2, 2), (3, 4)]
    assert official.space_token_spans(" a b ") == [(1, 2), (3, 4)]
    assert official.space_token_spans("a b  ") == [(0, 1), (2, 3), (4, 4)]
    assert official.space_token_spans("  x") == [(1, 1), (2, 3)]
    assert official.space_token_spans("") == [] and official.space_token_spans(" ") == []
    sentence = OPENER_RECORDS[0]["sentence"]
    # the official parse_to_origin + convert_opinion_to_tuple gave these token sets
    assert official.predicted_opinion(sentence, ("NULL", "staff", "nice", "positive")) == (
        frozenset(),
        frozenset({1}),
        frozenset(range(3, 13)),
        "Positive",
    )
    assert official.predicted_opinion(OPENER_RECORDS[1]["sentence"], ("", "the pool AND the bar", "oved", "x")) == (
        frozenset(range(8)),
        frozenset({2, 3, 5, 6}),
        frozenset(),
        "X",
    )


def test_official_gold_keeps_case_and_repeats():
    acsa = _fine_grained(SPECS["absa/acsa_rest16"], ACSA_RECORDS[0])
    assert acsa.official_gold == [("food quality", "positive"), ("food quality", "positive"),
                                  ("service general", "negative")]  # fmt: skip
    assert acsa.gold == [("food quality", "positive"), ("service general", "negative")]  # strict merges
    atsa = _fine_grained(SPECS["absa/atsa_rest16"], ATSA_RECORDS[0])
    assert sorted(atsa.official_gold) == [("Pizza", "positive"), ("pizza", "negative"), ("service", "negative")]
    twice = _fine_grained(SPECS["absa/atsa_rest16"], ATSA_RECORDS[1])
    assert twice.official_gold == [("food", "positive")] * 2 and twice.gold == [("food", "positive")]
