"""Parsers for every teacher answer (S2, S5, S6, S7-S8, S10): JSON first (schema-shaped, possibly truncated),
then the free-form layouts the official prompts produce.

Each parser returns a `Parsed` with the validated items and how they were found; items that fail
validation are dropped one by one (and counted), so a half-good answer still yields its good half.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from compeffdist.instructions.lenient_json import close_truncated_json, extract_json
from compeffdist.instructions.parsing import (
    BOLD_LEAD,
    ITEM_START,
    Parsed,
    clean,
    json_items,
    labelled,
    lead_name,
    one_line,
    parse_list,
    split_items,
    validate_items,
)
from compeffdist.instructions.schemas import AttributeItem, Demo, StandardizedTask, TaskIdea

MAX_ATTRIBUTE_NAME_WORDS = 6
MIN_PROMPT_WORDS = 4
MAX_PROMPT_WORDS = 80  # longer "prompts" are run-on text, not one instruction
# Small teachers echo the answer format ("description", "Attribute Value") as if it were an attribute.
FORMAT_WORDS = frozenset(
    [
        "name",
        "description",
        "value",
        "attribute",
        "attributes",
        "attribute name",
        "attribute description",
        "attribute value",
        "input",
        "output",
        "text",
        "example",
        "type",
    ]
)
FUNCTION_WORDS = frozenset(["the", "a", "an", "of", "and", "or", "to", "in", "is", "it", "this", "that"])


# ---------------------------------------------------------------- S2: attributes


def parse_attributes(text: str) -> Parsed[AttributeItem]:
    """Attributes from JSON ({"attributes": [...]}) or an official-style list.

    Accepts "1. **Tone**: Attribute Description - ... Attribute Value - ...", plain names,
    values inside the name ("**Tone: Contrarian**"), sub-bulleted fields and "Name: description".
    Names longer than a few words, or not starting with a letter, are not attribute names.
    """
    return parse_list(_validate_attributes, text, ("attributes",), _free_form_attributes)


def _validate_attributes(raw_items: Iterable[Any]) -> tuple[list[AttributeItem], int]:
    items, dropped = validate_items(AttributeItem, raw_items)
    kept = [item for item in items if _plausible_name(item.name)]
    return kept, dropped + len(items) - len(kept)


def _plausible_name(name: str) -> bool:
    """Short, starts with a letter, not a word of the answer format, not only function words."""
    words = name.lower().split()
    return (
        0 < len(words) <= MAX_ATTRIBUTE_NAME_WORDS
        and name[0].isalpha()
        and " ".join(words) not in FORMAT_WORDS
        and not set(words) <= FUNCTION_WORDS
    )


def _free_form_attributes(text: str) -> list[dict[str, Any]]:
    items = []
    for item in split_items(text) or _attribute_blocks(text):
        name, rest = lead_name(item)
        fields = dict(labelled(rest, r"attribute\s+description|attribute\s+value|description|value"))
        description = fields.get("attribute description", fields.get("description", ""))
        value = fields.get("attribute value", fields.get("value", ""))
        if not fields:
            description = rest
        name = re.sub(r"^attribute\s*(?:name)?\s*[:\-]\s*", "", clean(name), flags=re.I)
        items.append({"name": name.lower(), "description": _first_alnum(description), "value": _first_alnum(value)})
    return items


def _attribute_blocks(text: str) -> list[str]:
    """Unnumbered layout: "Attribute: Tone" (or just "Tone") lines followed by labelled fields."""
    blocks: list[list[str]] = []
    for line in text.splitlines():
        if re.match(r"^\s*(?:\*\*)?\s*attribute\s+(?:description|value)", line, re.I):
            if blocks:
                blocks[-1].append(line)
        elif line.strip():
            blocks.append([line])
    return ["\n".join(b) for b in blocks if len(b) > 1]


def _first_alnum(text: str) -> str:
    """Keep from the first letter or digit on (the official S2 rule), first paragraph only."""
    text = text.split("\n\n")[0]
    match = re.search(r"[A-Za-z0-9]", text)
    return " ".join(clean(text[match.start() :]).split()) if match else ""


# ---------------------------------------------------------------- S5: analysis prompts


def parse_analysis_prompts(text: str) -> Parsed[Any]:
    """Analysis prompts from JSON ({"prompts": [...]}) or a numbered/bulleted list.

    A leading title ("**Tone Analysis**:" or "Tone Analysis:") and numbering ("1. ", also inside JSON
    strings) are dropped, but colons inside the prompt are kept (the official parser cut prompts at
    their second colon). Prompts shorter or longer than one instruction are dropped.
    """
    return parse_list(_validate_prompts, text, ("prompts", "analysis_prompts", "questions"), split_items)


def _validate_prompts(raw_items: Iterable[Any]) -> tuple[list[str], int]:
    prompts, dropped = [], 0
    for raw in raw_items:
        candidate = raw if isinstance(raw, str) else _prompt_in(raw)
        prompt = _strip_title(ITEM_START.sub("", candidate, count=1)) if candidate else ""
        if MIN_PROMPT_WORDS <= len(prompt.split()) <= MAX_PROMPT_WORDS:
            prompts.append(prompt)
        else:
            dropped += 1
    return prompts, dropped


def _prompt_in(value: Any) -> str | None:
    if isinstance(value, dict):
        for key in ("prompt", "text", "instruction", "question"):
            if isinstance(value.get(key), str):
                return value[key]
    return None


def _strip_title(item: str) -> str:
    """One prompt from one list item: its first line, or the line after a title-only first line, without a
    leading title; bullets under a line that ends in ':' ("considering:") are joined into the prompt."""
    bold = BOLD_LEAD.match(item)
    if bold:
        item = item[bold.end() :] if item[bold.end() :].strip() else bold.group(1)
    lines = [line.strip() for line in item.splitlines() if line.strip()] or [""]
    start = 1 if len(lines) > 1 and not bold and _title_like(lines[0].rstrip(":")) else 0
    text = lines[start]
    title = re.match(r"^([^:?.!]{1,60}):\s+(.+)$", text)
    if title and _title_like(title.group(1)):
        text = title.group(2)
    points = [clean(ITEM_START.sub("", line, count=1)) for line in lines[start + 1 :] if ITEM_START.match(line)]
    if text.endswith(":") and points:
        text = f"{text} " + "; ".join(point.rstrip(".;") for point in points) + "."
    return clean(text)


def _title_like(words: str) -> bool:
    """ "Tone Analysis" or "Emotional Intensity" (capitalized words), not "Please analyze the tone"."""
    small = {"a", "an", "and", "of", "the", "in", "for", "to", "or", "on", "with", "&"}
    tokens = clean(words).split()
    return 0 < len(tokens) <= 5 and all(t[0].isupper() or t.lower() in small for t in tokens if t[0].isalpha())


# ---------------------------------------------------------------- S6/S7: tasks


def parse_task_ideas(text: str) -> Parsed[TaskIdea]:
    """Task ideas from a JSON list (Python literals and cut-off lists too) or labelled list items."""
    return parse_list(lambda raw: validate_items(TaskIdea, raw), text, ("tasks", "task_ideas"), _free_form_task_ideas)


def _free_form_task_ideas(text: str) -> list[dict[str, Any]]:
    ideas = []
    for item in split_items(text):
        fields = dict(labelled(item, r"task\s+name|task\s+type|task\s+description|name|type|description"))
        if fields:
            name = fields.get("task name", fields.get("name", ""))
            description = fields.get("task description", fields.get("description", ""))
            kind = fields.get("task type", fields.get("type", ""))
        else:
            name, description = lead_name(item)
            kind = ""
        ideas.append(
            {
                "task_name": clean(name.split("\n")[0]),
                "task_type": clean(kind),
                "task_description": one_line(description),
            }
        )
    return ideas


def parse_standardized_task(text: str) -> Parsed[StandardizedTask]:
    """A standardized task (the one item): JSON object, or the "1. Task Name / 2. Task Description /
    3. Task Examples" layout; `dropped` counts its examples that did not validate.

    Bold headers are optional (the official parser required them and aborted otherwise).
    """
    value = extract_json(text)
    if isinstance(value, list) and value and isinstance(value[0], dict):
        value = value[0]
    if isinstance(value, dict):
        example_keys = ("examples", "task_examples", "demos")
        raw_examples = next((value[k] for k in example_keys if isinstance(value.get(k), list)), [])
        try:
            task = StandardizedTask.model_validate({k: v for k, v in value.items() if k not in example_keys})
            task.examples, dropped = validate_items(Demo, raw_examples)  # one bad example does not sink the task
            return Parsed([task], "json", dropped)
        except ValidationError:
            pass
    sections = labelled(text, r"task\s+name|task\s+type|task\s+description|task\s+examples?")
    fields: dict[str, str] = {}
    for label, body in sections:
        fields.setdefault(label.replace("examples", "example"), body)
    name, description = fields.get("task name", ""), fields.get("task description", "")
    examples_text = fields.get("task example", text[text.lower().find("task description") :] if description else "")
    examples = parse_demo_pairs(examples_text)
    try:
        task = StandardizedTask(
            task_name=clean(name.split("\n")[0]),
            task_type=clean(fields.get("task type", "")),
            task_description=_drop_trailing_number(description),
            examples=examples.items,
        )
    except ValidationError:
        return Parsed([], "none", 1)
    return Parsed([task], "text", examples.dropped)


def _drop_trailing_number(text: str) -> str:
    """Drop a dangling "3." left from the next numbered header, keep the description's own lines."""
    lines = text.strip().splitlines()
    while lines and re.fullmatch(r"\s*(?:\d+[.)]|\*\*|#+)\s*", lines[-1]):
        lines.pop()
    return clean("\n".join(lines))


# ---------------------------------------------------------------- S9/S10: demos


def parse_demo_pairs(text: str) -> Parsed[Demo]:
    """Input/Output pairs from "Input: ... Output: ..." text, else from an answer that is JSON as a whole.

    Labels may be bold or prefixed with "Task"; an output that starts a JSON value keeps that whole
    value (closed if cut off); a plain output keeps its first paragraph. The labels go first: a JSON
    Output (`Output: [{"text": ..., "label": ...}]`) must not be read as the list of pairs.
    """
    pairs: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for label, body in labelled(text, r"(?:task\s+)?input|(?:task\s+)?output"):
        if label.endswith("input"):
            current = {"input": _demo_text(body, structured=False)}
        elif "input" in current and "output" not in current:
            current["output"] = _demo_text(body, structured=True)
            pairs.append(current)
    items, dropped = validate_items(Demo, pairs)
    if items:
        return Parsed(items, "text", dropped)
    whole = _defenced(text)
    raw = json_items(whole, ("instances", "examples", "demos")) if whole[:1] in ("[", "{") else None
    from_json, json_dropped = validate_items(Demo, raw or [])
    if from_json:
        return Parsed(from_json, "json", json_dropped)
    return Parsed([], "none", dropped + json_dropped)


def _defenced(text: str) -> str:
    """The answer without a wrapping ``` fence (```json ... ```), stripped."""
    text = text.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.strip().removesuffix("```")
    return text.strip()


def _demo_text(body: str, structured: bool) -> str:
    body = re.split(r"\n\s*(?:[-*+#]\s*)?(?:\*\*)?\s*example\s*\d*\b", body, flags=re.I)[0].strip()
    body = body.strip("`").removeprefix("json").strip() if body.startswith("`") else body
    if structured and body[:1] in "[{":
        value = extract_json(body)
        if value is None:
            value = close_truncated_json(body)
        if value is not None:
            return json.dumps(value, ensure_ascii=False)
    first = body.split("\n\n")[0]
    first = re.sub(r"^\s*[-+]\s+", "", first)
    for prefix in ("The text is:", "Analyze the text"):
        if first.lower().startswith(prefix.lower()):
            first = first[len(prefix) :]
    return one_line(first)
