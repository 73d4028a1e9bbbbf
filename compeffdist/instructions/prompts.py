"""The teacher's meta-prompts for every stage, paraphrasing the official prompts' intent (METHOD.md S1-S9).

Each builder returns the user turn. With `structured=True` the answer format is the JSON shape of
compeffdist.instructions.schemas (which also goes into the request for guided decoding); otherwise
the official free-form layout is asked for. The parsers accept both either way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from compeffdist.instructions.schemas import TASK_KINDS


def attribute_enumeration(text: str, structured: bool) -> str:
    """S1: brainstorm the sentiment-related attributes of one user text."""
    head = (
        "What sentiment-related attributes does the input text have? Requirements:\n"
        "1. Brainstorm as many attributes as possible, and be creative.\n"
        "2. Each attribute reflects a characteristic of the text.\n"
        "3. Give each attribute an Attribute Description (what it represents) and an Attribute Value "
        "(how it shows in this text).\n"
        "4. Ignore the specific content; focus on general textual attributes.\n"
    )
    if structured:
        shape = '{"attributes": [{"name": "tone", "description": "what it represents", "value": "how it shows"}]}'
        return f"{head}Answer with JSON only, shaped like {shape}\n\nInput: {text}"
    example = "1. **Tone**: Attribute Description - what it represents. Attribute Value - how it shows."
    return f"{head}Answer as a numbered list, e.g.\n{example}\n\nInput: {text}\nAttribute:"


def analysis_prompt_generation(
    attribute_names: Sequence[str], explanations: Sequence[tuple[str, str]], count: int, structured: bool
) -> str:
    """S4: open-ended analysis prompts for one cluster of attributes."""
    explained = "\n".join(f'The explanation for "{name}" is: {desc}' for name, desc in explanations if desc)
    head = (
        f"Please generate {count} prompts for analyzing subjective texts such as product reviews or social media "
        "posts. Rules:\n"
        f"1. Capture the core and the commonality of these attribute categories, without relying on one specific "
        f"attribute: {json.dumps(list(attribute_names), ensure_ascii=False)}\n"
        f"{explained}\n"
        '2. Stay general across domains: refer to the input neutrally, e.g. "this text".\n'
        "3. Each prompt helps to deconstruct a subjective text along these attribute categories.\n"
        '4. Use diverse strategies: open-ended instructions ("Please analyze...", "Please identify...") and '
        'diagnostic questions ("What...?", "Which...?", "How...?").\n'
    )
    if structured:
        return f'{head}Answer with JSON only, shaped like {{"prompts": ["...", "..."]}}'
    return f"{head}5. Answer as a numbered list, one prompt per line."


def task_ideation(attribute: str, description: str, count: int, structured: bool) -> str:
    """S6: diverse task ideas targeting a single text, for the cluster's top attribute."""
    focus = f"{attribute} ({description.rstrip('.').lower()})" if description else attribute
    head = (
        f"Focus on the text attribute: {focus}. Systematically generate {count} diverse tasks that each target a "
        "single text. Each task has a task name, a task type and a task description. Cover these task types:\n"
        "- classification: closed-set or open-ended categories;\n"
        "- rating: scoring on a quantitative scale;\n"
        "- extraction: keywords, key sentences, triggers, root causes, contextual dependencies;\n"
        "- structured: JSON, tables or multiple fields.\n"
        "Guidelines: be clear, be diverse, and use a single text only (never compare two texts).\n"
    )
    if structured:
        shape = '{"tasks": [{"task_name": "...", "task_type": "classification", "task_description": "..."}]}'
        return f"{head}Answer with JSON only, shaped like {shape} (task_type is one of {', '.join(TASK_KINDS)})."
    layout = "1. Task Name: ...\nTask Type: ...\nTask Description: ..."
    return f"{head}Answer as a numbered list, each task in this layout:\n{layout}"


def task_standardization(task_name: str, task_type: str, task_description: str, examples: int, structured: bool) -> str:
    """S7: rewrite one task idea into a standardized task with an exact output format and examples."""
    head = (
        "Standardize the following task.\n"
        f"Task Name: {task_name}\nTask Type: {task_type or 'unspecified'}\nTask Description: {task_description}\n\n"
        "Requirements:\n"
        "1. Avoid ambiguity: if the task could go two ways, pick one; put no requirements in the task input.\n"
        "2. Stay consistent with the original task.\n"
        "3. The description states the exact output format (a label, a number, JSON or a Python list): list all "
        "allowed labels for closed-set classification; for extraction say whether spans must match the text "
        "exactly; for structured output give the exact schema with all fields.\n"
        f"4. Provide at least {examples} examples, each with a task input (a single text) and a task output.\n"
    )
    if structured:
        shape = (
            '{"task_name": "...", "task_type": "classification", "task_description": "...", '
            '"examples": [{"input": "...", "output": "..."}]}'
        )
        return f"{head}Answer with JSON only, shaped like {shape}"
    layout = (
        "1. Task Name: ...\n2. Task Description: ...\n3. Task Examples:\nExample 1:\nTask Input: ...\nTask Output: ..."
    )
    return f"{head}Answer in this layout:\n{layout}"


def demo_generation(
    task_name: str,
    task_description: str,
    seed_demos: Sequence[dict[str, str]],
    references: Sequence[str],
    structured: bool,
) -> str:
    """S9: two new instances of a task whose inputs imitate real reference texts."""
    shown = "\n\n".join(f"Input: {d['input']}\nOutput: {d['output']}" for d in seed_demos)
    refs = "\n".join(f"- {text}" for text in references)
    head = (
        f"Generate two instances for the following task.\nTask: {task_name}\n{task_description}\n\n"
        "The input of each instance is a new single text that imitates the style, vocabulary and themes of the "
        "reference texts below (do not copy them, do not mention them). The output follows the task description.\n"
        f"Reference Texts:\n{refs}\n"
    )
    if shown:
        head += f"\nResponse format examples:\n{shown}\n"
    if structured:
        return f'{head}\nAnswer with JSON only, shaped like {{"instances": [{{"input": "...", "output": "..."}}]}}'
    return f"{head}\nAnswer with two blocks, each:\nInput: ...\nOutput: ..."
