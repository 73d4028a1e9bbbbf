"""Attribute-name normalization and aggregation (METHOD.md S3.1, `collect_attr.py`).

Rules, applied to each raw (lower-cased) name in this order:
- with ':' keep the part before the first ':' ("tone: sarcastic" -> "tone");
- else with '/' split into several attributes ("regret/anger" -> "regret", "anger");
- else with "use of " keep what follows ("use of sarcasm" -> "sarcasm").
Then aggregate: by default a normalized attribute's count is its number of mentions, as in the
official `collect_attr.py` (every raw occurrence, so "tone" and "tone: angry" in one answer count
twice); `texts` counts the texts that mention it instead (robust to a teacher that repeats a name
within one answer). It is kept when its count is strictly above the threshold.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from compeffdist.instructions import ids

CountMode = Literal["mentions", "texts"]


def normalize_attribute_name(raw: str) -> list[str]:
    """The normalized attribute name(s) of one raw name (empty list if nothing usable is left)."""
    name = " ".join(raw.lower().replace("**", "").split()).strip(" .,;\"'`-*")
    name = re.sub(r"^attribute\s*(?:name)?\s*:\s*", "", name)
    if ":" in name:
        parts = [name.split(":", 1)[0]]
    elif "/" in name:
        parts = name.split("/")
    elif "use of " in name:
        parts = [name.split("use of ", 1)[1]]
    else:
        parts = [name]
    cleaned = [" ".join(p.split()).strip(" .,;\"'`-*()") for p in parts]
    return [p for p in cleaned if p]


@dataclass
class Mention:
    """One attribute as parsed from one text's teacher answer."""

    text_id: str
    raw_name: str
    description: str
    value: str


@dataclass
class Attribute:
    """A normalized attribute with its evidence."""

    name: str
    count: int = 0  # mentions, or texts mentioning it (see aggregate_attributes)
    variants: Counter[str] = field(default_factory=Counter)  # raw names and how often each was seen
    descriptions: Counter[str] = field(default_factory=Counter)

    @property
    def attribute_id(self) -> str:
        return ids.attribute_id(self.name)

    def top_descriptions(self, k: int) -> list[str]:
        """Most common descriptions; ties broken alphabetically (deterministic, unlike the official random.choice)."""
        ranked = sorted(self.descriptions.items(), key=lambda kv: (-kv[1], kv[0]))
        return [d for d, _ in ranked[:k]]

    @property
    def description(self) -> str:
        top = self.top_descriptions(1)
        return top[0] if top else ""


def aggregate_attributes(mentions: Iterable[Mention], count: CountMode = "mentions") -> dict[str, Attribute]:
    """Normalized name -> Attribute; `count` says what Attribute.count counts: every mention (official) or texts."""
    attributes: dict[str, Attribute] = {}
    seen: set[tuple[str, str]] = set()
    for mention in mentions:
        for name in normalize_attribute_name(mention.raw_name):
            attribute = attributes.setdefault(name, Attribute(name))
            attribute.variants[mention.raw_name.lower().strip()] += 1
            if mention.description:
                attribute.descriptions[mention.description] += 1
            if count == "mentions" or (mention.text_id, name) not in seen:
                seen.add((mention.text_id, name))
                attribute.count += 1
    return attributes


def frequent_attributes(attributes: dict[str, Attribute], min_count: int) -> list[Attribute]:
    """Attributes seen strictly more than `min_count` times, most frequent first (ties by name)."""
    kept = [a for a in attributes.values() if a.count > min_count]
    return sorted(kept, key=lambda a: (-a.count, a.name))


def count_histogram(counts: Iterable[int]) -> dict[str, int]:
    """How many attributes fall in each power-of-two count bin ("1", "2", "3-4", "5-8", ...), low bins first.

    Attribute counts are long-tailed (a few in the thousands, most near the threshold), so bins double.
    """
    bins: Counter[int] = Counter()
    for value in counts:
        bins[max(int(value) - 1, 0).bit_length()] += 1  # k: the bin (2**(k-1), 2**k]; 0 holds counts <= 1
    labels = {}
    for k in sorted(bins):
        low, high = 2 ** (k - 1) + 1 if k else 1, 2**k
        labels[f"{low}-{high}" if high > low else str(high)] = bins[k]
    return labels
