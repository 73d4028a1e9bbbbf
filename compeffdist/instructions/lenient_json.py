"""Find JSON in a teacher's answer: fenced, embedded in prose, Python-literal, or cut off by max_tokens.

Small teachers wrap JSON in prose, use single quotes, break the grammar half-way, or run out of
tokens. `extract_json` returns the first JSON value it can recover, or None; callers validate the
shape with pydantic, item by item.
"""

from __future__ import annotations

import ast
import json
from typing import Any

OPENERS = {"{": "}", "[": "]"}
MAX_CANDIDATES = 8  # opening brackets tried, left to right
MAX_CUTS = 64  # cut points tried per candidate, latest first


def extract_json(text: str) -> Any | None:
    """The first JSON object or array found in `text` (complete, Python-literal, or repaired), else None."""
    starts = [i for i, ch in enumerate(text) if ch in OPENERS][:MAX_CANDIDATES]
    decoder = json.JSONDecoder()
    for start in starts:
        try:
            value, _ = decoder.raw_decode(text, start)
            return value
        except json.JSONDecodeError:
            pass
        literal = _python_literal(text, start)
        if literal is not None:
            return literal
        repaired = close_truncated_json(text[start:])
        if repaired is not None:
            return repaired
    return None


def _python_literal(text: str, start: int) -> Any | None:
    """Single-quoted, Python-style lists/dicts (the official stage-2 parser used ast.literal_eval)."""
    end = text.rfind(OPENERS[text[start]])
    if end <= start:
        return None
    try:
        value = ast.literal_eval(text[start : end + 1])
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    return value if isinstance(value, (list, dict)) else None


def close_truncated_json(text: str) -> Any | None:
    """Parse the longest prefix of `text` (starting at a bracket) that ends on a complete element.

    The scan stops at the end of the text or at the first bracket that does not match; everything
    after the last complete array element or object member is dropped and the open brackets are
    closed; if that still does not parse (a grammar error earlier on), earlier cuts are tried.
    Returns None when no cut parses.
    """
    stack: list[str] = []
    in_string = escaped = False
    expecting_key = False  # inside an object, the next string is a key (not a complete member)
    safe: list[tuple[int, list[str]]] = []  # (cut position, open brackets there)
    for index, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
                if stack and (stack[-1] == "[" or not expecting_key):
                    safe.append((index + 1, list(stack)))
            continue
        if ch == '"':
            in_string = True
        elif ch in OPENERS:
            stack.append(ch)
            expecting_key = ch == "{"
        elif ch in "}]":
            if not stack or OPENERS[stack[-1]] != ch:
                break
            stack.pop()
            if not stack:
                return _loads(text[: index + 1])
            expecting_key = False
            safe.append((index + 1, list(stack)))
        elif ch == ":":
            expecting_key = False
        elif ch == ",":
            safe.append((index, list(stack)))  # what precedes a comma is a complete element (numbers, literals)
            expecting_key = bool(stack) and stack[-1] == "{"
    # The latest cut that parses wins; earlier cuts also get past grammar errors the scan does not see.
    for cut, open_brackets in reversed(safe[-MAX_CUTS:]):
        value = _loads(text[:cut] + "".join(OPENERS[b] for b in reversed(open_brackets)))
        if value is not None:
            return value
    return None


def _loads(text: str) -> Any | None:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None
