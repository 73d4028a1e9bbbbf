"""The label a free-text answer gives, for teacher-student label agreement on classification records.

An answer's label is, in this order:
1. the first sentiment polarity it names: the first whole word, case-insensitive, among POLARITIES
   ("The review is clearly positive." -> "positive"; "Negative, not positive" -> "negative").
   Negation is not parsed: "not positive" reads as positive, for teacher and student alike;
2. otherwise its opening: the first non-empty line, lowercased, every run of characters other than
   letters and digits read as one space, cut to its first OPENING_WORDS words ("Output: Sarcastic!" ->
   "output sarcastic"). Task labels outside the polarity set ("sarcastic", "1 star") land here;
3. None for an empty answer.

Why not each task's own label set: instruction templates written by a small teacher often carry no
usable one (the local default's SmolLM2-135M writes "classification" tasks whose demo outputs are
sentences), so the label set cannot be read from the task. Polarity is what a sentiment pipeline's
classification answers share; the opening rule keeps the other answers comparable instead of dropping
them, and then measures whether the student starts its answer as the teacher does.
"""

from __future__ import annotations

import re

POLARITIES = ("positive", "negative", "neutral", "mixed")
OPENING_WORDS = 6
_POLARITY = re.compile(r"\b(" + "|".join(POLARITIES) + r")\b", re.IGNORECASE)
_NOT_WORD = re.compile(r"[^0-9a-z]+")


def answer_label(answer: str | None) -> str | None:
    """The polarity `answer` names first, else its normalized opening words, else None (empty answer)."""
    if not answer or not answer.strip():
        return None
    match = _POLARITY.search(answer)
    if match:
        return match.group(1).lower()
    first_line = next(line for line in answer.splitlines() if line.strip())
    words = _NOT_WORD.sub(" ", first_line.lower()).split()
    return " ".join(words[:OPENING_WORDS]) or None
