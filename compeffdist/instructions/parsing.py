"""The building blocks of every teacher-answer parser: the one parse result (`Parsed`), the JSON-then-text
route, and readers of the free-form layouts the official prompts produce (numbered or bulleted lists,
bold or plain leads, labelled fields such as "Task Name:" or "**Attribute Value** -").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from compeffdist.instructions.lenient_json import extract_json

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

# "1." "2)" bullets, and "Task 1:" / "Prompt 2." headers that small teachers write instead of numbers.
ITEM_START = re.compile(
    r"^\s*(?:#+\s*)?(?:\*\*)?(?:\d{1,3}\s*[.)]|[-*•+]|(?:task|prompt)\s+\d{1,3}\s*[:.)](?:\*\*)?)\s+(?=\S)", re.I
)
NUMBERED_START = re.compile(r"^\s*(?:#+\s*)?(?:\*\*)?(?:\d{1,3}\s*[.)]|(?:task|prompt)\s+\d{1,3}\s*[:.)])", re.I)
BOLD_LEAD = re.compile(r"^\s*\*\*(.+?)\*\*\s*[:\-–—]?\s*")
# Labels written by the official prompts' layouts, bold or not, with ':' or ' - ' after them.
LABEL = r"(?:\*\*|__)?\s*(?P<label>{names})\s*(?:\*\*|__)?\s*(?:[:：]|\s[-–—]\s?)\s*(?:\*\*|__)?"


@dataclass
class Parsed(Generic[T]):
    """What a parser made of one answer: the validated items, the route that found them ("json", "text" or
    "none"), and how many candidate items failed validation. The one parse result of instruction construction."""

    items: list[T] = field(default_factory=list)
    method: str = "none"
    dropped: int = 0  # candidate items that failed validation

    @property
    def ok(self) -> bool:
        return bool(self.items)


def validate_items(model: type[M], raw_items: Iterable[Any]) -> tuple[list[M], int]:
    """The raw items that `model` validates, and how many did not."""
    items, dropped = [], 0
    for raw in raw_items:
        try:
            items.append(model.model_validate(raw))
        except ValidationError:
            dropped += 1
    return items, dropped


def json_items(text: str, keys: tuple[str, ...]) -> list[Any] | None:
    """The item list of a JSON answer: a top-level list, or the list under one of `keys` (first found)."""
    value = extract_json(text)
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        for key in keys:
            if isinstance(value.get(key), list):
                return value[key]
        lists = [v for v in value.values() if isinstance(v, list)]
        if len(lists) == 1:
            return lists[0]
    return None


# Validates candidate items: (usable items, candidates dropped).
Validator = Callable[[Iterable[Any]], tuple[list[Any], int]]


def parse_list(
    validate: Validator, text: str, keys: tuple[str, ...], free_form: Callable[[str], list[Any]]
) -> Parsed[Any]:
    """The shared JSON-then-text route of every list parser.

    JSON items count only when they survive `validate` and are not outnumbered by the free-form
    route's: a numbered list whose prompt embeds `one of ["positive", "negative"]` is still a list.
    """
    raw = json_items(text, keys)
    from_json, json_dropped = validate(raw) if raw else ([], 0)
    text_items, text_dropped = validate(free_form(text))
    if from_json and len(from_json) >= len(text_items):
        return Parsed(from_json, "json", json_dropped)
    return Parsed(text_items, "text" if text_items else "none", text_dropped)


def _indent(line: str) -> int:
    return len(line.expandtabs(4)) - len(line.expandtabs(4).lstrip())


def split_items(text: str) -> list[str]:
    """Split a numbered or bulleted list into items (continuation lines stay with their item).

    The list's own marker is numbers if any line is numbered, else bullets. A line starts a new item
    only with that marker at (or left of) the first item's indentation: indented lines and bullets
    under a numbered item ("1. Please analyze ... considering:\n   - a\n   - b") continue it, as do
    labelled field bullets ("- Attribute Value: ...") in a bulleted list.
    """
    lines = text.splitlines()
    marked = [line for line in lines if ITEM_START.match(line)]
    numbered = any(NUMBERED_START.match(line) for line in marked)
    top = next((_indent(line) for line in marked if bool(NUMBERED_START.match(line)) == numbered), 0)
    field_line = re.compile(r"^\s*[-*•+]?\s*(?:\*\*)?\s*(?:attribute|task)\s+(?:description|value|input|output)", re.I)
    items: list[list[str]] = []
    for line in lines:
        starts = (
            ITEM_START.match(line)
            and bool(NUMBERED_START.match(line)) == numbered
            and _indent(line) <= top
            and not (items and field_line.match(line))
        )
        if starts:
            items.append([ITEM_START.sub("", line, count=1)])
        elif items:
            items[-1].append(line)
    return ["\n".join(lines).strip() for lines in items if "".join(lines).strip()]


def clean(text: str) -> str:
    """Strip markdown emphasis, wrapping quotes/backticks and surrounding punctuation noise."""
    text = text.strip().replace("**", "").replace("__", "")
    text = text.strip("`").strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'“”":
        text = text[1:-1]
    return text.strip(" \t\"'“”").strip()


def labelled(text: str, names: str) -> list[tuple[str, str]]:
    """(label, value) pairs for labels like "Task Name:" / "**Attribute Value** -" anywhere in `text`."""
    pattern = re.compile(r"(?:^|(?<=\s)|(?<=\*))" + LABEL.format(names=names), re.I | re.M)
    matches = list(pattern.finditer(text))
    pairs = []
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        value = text[match.end() : end].strip().rstrip("-*+•").strip()  # the next field's bullet
        pairs.append((re.sub(r"\s+", " ", match.group("label").lower()), value))
    return pairs


def lead_name(item: str) -> tuple[str, str]:
    """Split an item into its name and the rest: a bold lead, else text before ':' or ' - '."""
    bold = BOLD_LEAD.match(item)
    if bold:
        return bold.group(1).strip().rstrip(":"), item[bold.end() :]
    first_line, _, others = item.partition("\n")
    match = re.match(r"^(.*?)(?:\s*[:：]\s*|\s+[-–—]\s+)(.*)$", first_line)
    if match and not re.match(r"^\s*attribute\s+(?:description|value)", first_line, re.I):
        return match.group(1), (match.group(2) + "\n" + others).strip()
    return first_line, others


def one_line(text: str) -> str:
    """`clean` text with its whitespace runs (newlines included) collapsed to single spaces."""
    return " ".join(clean(text).split())
