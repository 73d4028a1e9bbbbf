"""SentiBench few-shot prompts: one instruction line, k demos, then the test sentence (raw completion)."""

from __future__ import annotations

import json
import random

from compeffdist.evaluation.datasets import ACSA_CATEGORIES, CLASSIFICATION, DatasetSpec, Example

STOP = "\nSentence:"
POLARITIES = "positive, negative, neutral"
FSA_INSTRUCTIONS = {
    "absa/asqp_rest16": (
        "Please perform aspect sentiment quad prediction task. Given the sentence, extract all (aspect term, "
        "aspect category, opinion, sentiment) quads. Aspect category is one of [" + ", ".join(ACSA_CATEGORIES) + "]; "
        f'sentiment is one of [{POLARITIES}]; an implicit aspect term is "NULL". Return a JSON list of objects '
        'with keys "aspect_term", "aspect_category", "opinion", "sentiment", e.g. '
        '[{"aspect_term": "pizza", "aspect_category": "food quality", "opinion": "tasty", "sentiment": "positive"}].'
    ),
    "absa/opener": (
        "Please perform structured sentiment analysis task. Given the sentence, extract all opinions as "
        '(holder, target, sentiment expression, sentiment polarity); holder and target are "NULL" when absent; '
        'polarity is one of [positive, negative, neutral]. Return a JSON list of objects with keys "holder", '
        '"target", "sentiment_expression", "sentiment_polarity", or [] when there is no opinion.'
    ),
    "absa/atsa_rest16": (
        "Please perform aspect term sentiment analysis task. Given the sentence, extract all aspect terms and "
        f'their sentiment from [{POLARITIES}, conflict]. Return a JSON list of objects with keys "aspect_term" '
        'and "sentiment", e.g. [{"aspect_term": "service", "sentiment": "negative"}].'
    ),
    "absa/acsa_rest16": (
        "Please perform aspect category sentiment analysis task. Given the sentence, list every aspect category "
        "from [" + ", ".join(ACSA_CATEGORIES) + f"] it discusses with its sentiment from [{POLARITIES}]. Return a "
        'JSON list of objects with keys "aspect_category" and "sentiment".'
    ),
}


def classification_instruction(spec: DatasetSpec, target: str | None) -> str:
    labels = ", ".join(spec.labels)
    if spec.key == "multifaced/pstance":
        return (
            f"Please perform {spec.task} task. Given the sentence, assign a stance label towards '{target}' from "
            f"[{labels}]. Return label only without any other text."
        )
    return (
        f"Please perform {spec.task} task. Given the sentence, assign a label from [{labels}]. "
        "Return label only without any other text."
    )


def _answer(spec: DatasetSpec, demo: Example) -> str:
    if spec.kind == CLASSIFICATION:
        if spec.key == "multifaced/pstance":
            return f"{demo.gold} (opinion towards '{demo.target}')"
        return str(demo.gold)
    return json.dumps(demo.gold_json, indent=2, ensure_ascii=False)


def build_prompt(spec: DatasetSpec, test: Example, demos: list[Example]) -> str:
    """The raw completion prompt; the model's next tokens are the label or the JSON answer."""
    cue = "Label:" if spec.kind == CLASSIFICATION else "Output:"
    head = classification_instruction(spec, test.target) if spec.kind == CLASSIFICATION else FSA_INSTRUCTIONS[spec.key]
    blocks = [head, ""]
    blocks += [f"Sentence: {d.sentence}\n{cue} {_answer(spec, d)}" for d in demos]
    blocks.append(f"Sentence: {test.sentence}\n{cue}")
    return "\n".join(blocks)


def sample_demos(pool: list[Example], k: int, seed: int, count: int) -> list[list[Example]]:
    """k demos per test example, uniformly from the train pool, reproducible from the seed."""
    rng = random.Random(seed)
    return [rng.sample(pool, min(k, len(pool))) for _ in range(count)]
