"""Quality filters for generated prompts, tasks and demos: duplicates, near-duplicates, two-text tasks,
leaked "reference text" mentions, and the task kind when the teacher's type label is missing or odd."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")

# The official S8 filter (pairs that mean a task compares two texts), plus the common "first/second text".
TWO_TEXT_PAIRS = (
    ("text 1", "text 2"),
    ("text1", "text2"),
    ("text a", "text b"),
    ("plot 1", "plot 2"),
    ("review 1", "review 2"),
    ("first text", "second text"),
)


# Why generated items were dropped; every reason is always in the stage counts (0 included).
DROP_REASONS = ("over_limit", "two_texts", "reference_text", "near_duplicate")


def drop_counts(prefix: str, dropped: Counter[str], reasons: tuple[str, ...] = DROP_REASONS) -> dict[str, int]:
    """Stage counts `<prefix>_dropped_<reason>` for every reason (unknown reasons too), so none goes unreported."""
    return {f"{prefix}_dropped_{reason}": dropped[reason] for reason in sorted({*reasons, *dropped})}


def mentions_two_texts(text: str) -> bool:
    """True when both halves of a two-text pair occur ("text 1" ... "text 2"): the task compares two texts."""
    lowered = text.lower()
    return any(a in lowered and b in lowered for a, b in TWO_TEXT_PAIRS)


def mentions_reference_text(text: str) -> bool:
    """True when a generated item leaks the demo prompt's "reference text(s)" into its content."""
    return bool(re.search(r"reference\s+texts?", text, re.I))


def word_set(text: str) -> frozenset[str]:
    """Lower-cased alphanumeric words of `text`."""
    return frozenset(re.findall(r"[a-z0-9]+", text.lower()))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """|a & b| / |a | b|; two empty sets are identical (1.0)."""
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


class NearDuplicateFilter:
    """Remembers accepted texts; `accept` refuses exact and near duplicates (word-set Jaccard >= threshold).

    Callers feed candidates in a deterministic order, so which copy survives is deterministic too.
    """

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self._seen: list[frozenset[str]] = []
        self._exact: set[str] = set()

    def accept(self, text: str) -> bool:
        key = " ".join(text.lower().split())
        if key in self._exact:
            return False
        words = word_set(text)
        if any(jaccard(words, other) >= self.threshold for other in self._seen):
            return False
        self._exact.add(key)
        self._seen.append(words)
        return True


def keep_items(
    items: Iterable[T],
    content: Callable[[T], str],
    key: Callable[[T], str],
    unique: NearDuplicateFilter,
    limit: int | None = None,
) -> tuple[list[T], Counter[str]]:
    """The items to keep, in order, and the others counted by reason.

    The one filter of analysis prompts, task ideas, seed and generated demos and templates: drops
    items past `limit`, whose `content` mentions two texts or reference texts, and those whose `key`
    `unique` has (nearly) seen. `unique` is asked last, so it only remembers kept items; seeding it
    with kept keys makes later items avoid them.
    """
    kept: list[T] = []
    dropped: Counter[str] = Counter()
    for item in items:
        text = content(item)
        if limit is not None and len(kept) >= limit:
            dropped["over_limit"] += 1
        elif mentions_two_texts(text):
            dropped["two_texts"] += 1
        elif mentions_reference_text(text):
            dropped["reference_text"] += 1
        elif not unique.accept(key(item)):
            dropped["near_duplicate"] += 1
        else:
            kept.append(item)
    return kept, dropped


def clean_demos(
    demos: Iterable[dict[str, str]], unique: NearDuplicateFilter, limit: int | None = None
) -> tuple[list[dict[str, str]], Counter[str]]:
    """`keep_items` for demos ({input, output}; near-duplicates judged on the input), as plain dicts."""
    kept, dropped = keep_items(demos, lambda d: f"{d['input']} {d['output']}", lambda d: d["input"], unique, limit)
    return [{"input": d["input"], "output": d["output"]} for d in kept], dropped


KIND_SYNONYMS = {
    "classification": "classification",
    "classify": "classification",
    "categorization": "classification",
    "rating": "rating",
    "scoring": "rating",
    "score": "rating",
    "scoring/rating": "rating",
    "regression": "rating",
    "extraction": "extraction",
    "information extraction": "extraction",
    "extract": "extraction",
    "structured": "structured",
    "structured output": "structured",
    "json": "structured",
}
KIND_CUES = (
    ("structured", r"\bjson\b|\btable\b|structured|\bfields?\b|\bschema\b"),
    ("rating", r"\brat(e|ing)\b|\bscor(e|ing)\b|\bscale\b|\b1\s*(-|to)\s*(5|10)\b"),
    ("extraction", r"\bextract|\bspans?\b|\bkeywords?\b|key (sentence|phrase)|\bidentify the (words|phrases)"),
    ("classification", r"classif|categor|\blabel|\bdetect|\bwhether\b"),
)


def task_kind(declared: str, name: str, description: str) -> str:
    """The teacher's declared type if recognizable, else inferred from cues; classification by default."""
    declared_key = " ".join(declared.lower().replace("_", " ").split())
    if declared_key in KIND_SYNONYMS:
        return KIND_SYNONYMS[declared_key]
    text = f"{name} {description}".lower()
    for kind, pattern in KIND_CUES:
        if re.search(pattern, text):
            return kind
    return "classification"
