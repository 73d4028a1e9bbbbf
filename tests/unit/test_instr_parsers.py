"""Parsers of teacher answers on messy, real-looking outputs: bold/plain lists, extra colons, truncated JSON."""

from __future__ import annotations

import json

import pytest

from compeffdist.instructions.lenient_json import close_truncated_json, extract_json
from compeffdist.instructions.parsers import (
    parse_analysis_prompts,
    parse_attributes,
    parse_demo_pairs,
    parse_standardized_task,
    parse_task_ideas,
)
from compeffdist.instructions.parsing import split_items

pytestmark = pytest.mark.unit


# ---------------------------------------------------------------- lenient JSON


def test_extract_json_finds_fenced_json_after_prose():
    text = 'Sure! Here you go:\n```json\n{"prompts": ["What is the tone of this text?"]}\n```\nHope it helps.'
    assert extract_json(text) == {"prompts": ["What is the tone of this text?"]}


def test_extract_json_accepts_python_literals():
    assert extract_json("[{'task_name': 'Tone', 'task_description': 'Classify it.'}]") == [
        {"task_name": "Tone", "task_description": "Classify it."}
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[{"a": 1}, {"a": 2, "b": "tru', [{"a": 1}, {"a": 2}]),
        ('{"prompts": ["Please analyze x.", "What b', {"prompts": ["Please analyze x."]}),
        ('{"a": "x", "b": {"c": [1, 2', {"a": "x", "b": {"c": [1]}}),
        ('["esc \\" quote", "cut', ['esc " quote']),
        ('{"key_only', None),
    ],
)
def test_truncated_json_is_closed_after_the_last_complete_element(text, expected):
    assert close_truncated_json(text) == expected


def test_grammar_error_midway_keeps_what_came_before():
    # SmolLM2-135M really wrote this: an object closed too early, then stray members.
    text = '{"attributes": [{"name": "The food", "description": "x"}, "value": "v", "type": "S"}}'
    value = extract_json(text)
    assert value["attributes"][0] == {"name": "The food", "description": "x"}


def test_no_json_gives_none():
    assert extract_json("1. Tone\n2. Sarcasm") is None


# ---------------------------------------------------------------- attributes


OFFICIAL_STYLE = """Here are the sentiment-related attributes:

1. **Tone**: Attribute Description - The overall attitude: how the writer feels. Attribute Value - Frustrated.
2. **Emotional Intensity** - Attribute Description - strength of emotion. Attribute Value - high
3. **Sarcasm: Present**
   - Attribute Description: use of irony
   - Attribute Value: present
4. Use of Humor: Attribute Description - jokes. Attribute Value - none
5. Regret/Anger: the feeling of regret
6. "The waiter ignored us for twenty minutes and it was awful" - a quote, not an attribute
7. **Attribute: Politeness**: Attribute Description - courtesy. Attribute Value - low
"""


def test_attributes_from_official_numbered_list_bold_and_plain():
    parsed = parse_attributes(OFFICIAL_STYLE)
    assert parsed.method == "text"
    by_name = {item.name: item for item in parsed.items}
    assert list(by_name) == ["tone", "emotional intensity", "sarcasm: present", "use of humor", "regret/anger",
                             "politeness"]  # fmt: skip
    assert by_name["tone"].description == "The overall attitude: how the writer feels."  # extra colon kept
    assert by_name["tone"].value == "Frustrated."
    assert by_name["sarcasm: present"].description == "use of irony"  # sub-bullet fields, no trailing bullet
    assert by_name["sarcasm: present"].value == "present"
    assert by_name["regret/anger"].description == "the feeling of regret"
    assert parsed.dropped == 1  # the long quote is not an attribute name


def test_attributes_from_json_and_from_truncated_json():
    full = {"attributes": [{"name": "Tone", "description": "attitude", "value": "angry"}, {"name": "Sarcasm"}]}
    parsed = parse_attributes(json.dumps(full))
    assert parsed.method == "json"
    assert [(i.name, i.description, i.value) for i in parsed.items] == [
        ("Tone", "attitude", "angry"),
        ("Sarcasm", "", ""),
    ]
    cut = json.dumps(full)[:-25]
    assert [i.name for i in parse_attributes(cut).items] == ["Tone"]


def test_attributes_unnumbered_layout_after_attribute_prompt():
    text = "Tone\nAttribute Description - attitude of the writer\nAttribute Value - angry\n\nSarcasm\n" \
           "Attribute Description - irony\nAttribute Value - high"  # fmt: skip
    assert [i.name for i in parse_attributes(text).items] == ["tone", "sarcasm"]


def test_attributes_prose_without_list_is_not_parsed():
    parsed = parse_attributes("The battery life is decent, but the screen scratches too much for the price.")
    assert not parsed.ok and parsed.method == "none"


def test_split_items_keeps_continuations_and_field_bullets_together():
    # In a numbered list a bullet is never a new item, even unindented ("* C" continues item 2).
    text = "intro\n1. **A**: x\n   more about a\n- Attribute Value: v\n2) B - y\n* C"
    assert split_items(text) == ["**A**: x\n   more about a\n- Attribute Value: v", "B - y\n* C"]


def test_split_items_sub_bullets_continue_their_numbered_item():
    text = """1. Please analyze the emotional tone of this text, considering:
   - the choice of words
   - the use of punctuation
2. Which phrases in this text express frustration?
   * list each phrase
3. How does the writer's tone change?"""
    items = split_items(text)
    assert len(items) == 3
    assert items[0].startswith("Please analyze") and "- the use of punctuation" in items[0]
    assert items[1].startswith("Which phrases") and "* list each phrase" in items[1]


def test_split_items_bulleted_list_with_indented_sub_bullets():
    text = "- Tone\n  - Attribute Description: attitude\n- Sarcasm\n    + nested detail\n- Humor"
    assert split_items(text) == ["Tone\n  - Attribute Description: attitude", "Sarcasm\n    + nested detail", "Humor"]


def test_split_items_uniformly_indented_list_and_deeper_numbered_sub_list():
    text = "  1. First prompt here\n  2. Second prompt here\n      1. a sub point\n  3. Third prompt here"
    assert split_items(text) == ["First prompt here", "Second prompt here\n      1. a sub point", "Third prompt here"]


# ---------------------------------------------------------------- analysis prompts


def test_analysis_prompts_drop_titles_but_keep_inner_colons():
    text = """1. **Tone Analysis**: Please analyze the tone of this text: is it sarcastic, sincere or neutral?
2. Emotional Intensity: How strongly does the writer express emotions in this text?
3. Please identify the target: which entity does this text criticize?
4. **Which words in this text signal frustration?**
5. Too short.
"""
    parsed = parse_analysis_prompts(text)
    assert parsed.items == [
        "Please analyze the tone of this text: is it sarcastic, sincere or neutral?",
        "How strongly does the writer express emotions in this text?",
        "Please identify the target: which entity does this text criticize?",
        "Which words in this text signal frustration?",
    ]
    assert parsed.dropped == 1


def test_analysis_prompts_from_json_objects_or_strings():
    text = '{"prompts": ["What emotions does this text convey?", {"prompt": "How polite is the writer here?"}]}'
    assert parse_analysis_prompts(text).items == [
        "What emotions does this text convey?",
        "How polite is the writer here?",
    ]


def test_analysis_prompts_list_with_an_embedded_json_list_is_still_a_list():
    text = """1. Please classify the overall sentiment of this text as one of ["positive", "negative", "neutral"].
2. Which words in this text carry the strongest emotion?
3. How does the writer's attitude change from start to end?
"""
    parsed = parse_analysis_prompts(text)
    assert parsed.method == "text"
    assert parsed.items == [
        'Please classify the overall sentiment of this text as one of ["positive", "negative", "neutral"].',
        "Which words in this text carry the strongest emotion?",
        "How does the writer's attitude change from start to end?",
    ]


def test_analysis_prompts_embedded_list_of_long_strings_does_not_beat_the_list():
    # The embedded strings pass the length filter, but the numbered list has more prompts.
    text = """1. Compare this text with examples like ["the food was great overall", "the staff ignored us for ages"].
2. Which words in this text carry the strongest emotion?
3. How does the writer's attitude change from start to end?
"""
    parsed = parse_analysis_prompts(text)
    assert parsed.method == "text" and len(parsed.items) == 3


def test_analysis_prompts_from_json_lose_their_numbering():
    text = json.dumps({"prompts": ["1. What emotions does this text convey?", "2) How polite is the writer here?",
                                   "Prompt 3: Which words signal anger in this text?"]})  # fmt: skip
    parsed = parse_analysis_prompts(text)
    assert parsed.method == "json"
    assert parsed.items == [
        "What emotions does this text convey?",
        "How polite is the writer here?",
        "Which words signal anger in this text?",
    ]


def test_analysis_prompt_with_indented_sub_bullets_is_one_prompt():
    text = """1. Please analyze the emotional tone of this text, considering:
   - the choice of words and their strength
   - the use of punctuation and emphasis
2. Which phrases in this text express frustration?"""
    assert parse_analysis_prompts(text).items == [
        "Please analyze the emotional tone of this text, considering: the choice of words and their strength; "
        "the use of punctuation and emphasis.",
        "Which phrases in this text express frustration?",
    ]


# ---------------------------------------------------------------- tasks


def test_task_ideas_from_json_list_with_alias_keys_and_a_bad_item():
    text = 'Tasks:\n[{"name": "Tone label", "type": "classification", "description": "Label the tone."},' \
           ' {"task_name": "Broken"}]'  # fmt: skip
    parsed = parse_task_ideas(text)
    assert parsed.method == "json" and parsed.dropped == 1
    assert parsed.items[0].task_name == "Tone label" and parsed.items[0].task_type == "classification"


def test_task_ideas_from_labelled_markdown_list():
    text = """1. **Task Name**: Tone Rating
   **Task Type**: rating
   **Task Description**: Rate the tone from 1 to 5.
2. Task Name: Trigger Extraction
   Task Description: Extract the phrase that triggers the emotion.
"""
    ideas = parse_task_ideas(text).items
    assert [(i.task_name, i.task_type) for i in ideas] == [("Tone Rating", "rating"), ("Trigger Extraction", "")]
    assert ideas[1].task_description == "Extract the phrase that triggers the emotion."


def test_task_ideas_from_task_n_headers():
    # SmolLM2-135M's layout: "Task N:" instead of a numbered list.
    text = "Task 1: Tone Label: Classify the tone of this text.\n\nTask 2: Cause Extraction - Extract the cause."
    ideas = parse_task_ideas(text).items
    assert [(i.task_name, i.task_description) for i in ideas] == [
        ("Tone Label", "Classify the tone of this text."),
        ("Cause Extraction", "Extract the cause."),
    ]


def test_standardized_task_official_layout_with_and_without_bold():
    text = """**1. Task Name**: Tone Classification
**2. Task Description**: Classify the tone of the text as one of: positive, negative, neutral. Output the label only.
**3. Task Examples**:
Example 1:
- Task Input: "The staff were lovely."
- Task Output: positive
Example 2:
+ Task Input: I waited an hour.
+ Task Output: negative
"""
    for variant in (text, text.replace("**", "")):
        parsed = parse_standardized_task(variant)
        assert parsed.method == "text" and len(parsed.items) == 1
        task = parsed.items[0]
        assert task.task_name == "Tone Classification"
        assert task.task_description.startswith("Classify the tone") and "label only." in task.task_description
        assert [(d.input, d.output) for d in task.examples] == [
            ("The staff were lovely.", "positive"),
            ("I waited an hour.", "negative"),
        ]


def test_standardized_task_json_with_structured_outputs():
    value = {
        "task_name": "Aspect JSON",
        "task_type": "structured",
        "task_description": 'Return JSON {"aspect": str, "sentiment": str}.',
        "examples": [{"input": "Great pizza.", "output": {"aspect": "pizza", "sentiment": "positive"}}, {"x": 1}],
    }
    parsed = parse_standardized_task(json.dumps(value))
    assert parsed.method == "json" and parsed.dropped == 1  # the example without input/output
    task = parsed.items[0]
    assert task.task_type == "structured"
    assert [(d.input, json.loads(d.output)) for d in task.examples] == [
        ("Great pizza.", {"aspect": "pizza", "sentiment": "positive"})
    ]


def test_standardized_task_without_name_is_not_ok():
    parsed = parse_standardized_task("I cannot help with that.")
    assert not parsed.ok and parsed.method == "none"


# ---------------------------------------------------------------- demos


def test_demo_pairs_bold_labels_prefixes_and_unbalanced_json():
    text = """**Input:** "Loved the new phone, battery lasts forever."
**Output:** The text is: positive

Second paragraph of commentary that is not part of the output.

Input: Screen cracked after a day.
Output: {"aspect": "screen", "sentiment": "negative"
"""
    pairs = parse_demo_pairs(text).items
    assert [(p.input, p.output) for p in pairs] == [
        ("Loved the new phone, battery lasts forever.", "positive"),
        ("Screen cracked after a day.", '{"aspect": "screen", "sentiment": "negative"}'),
    ]


def test_demo_pairs_from_json_and_input_without_output():
    assert [p.output for p in parse_demo_pairs('{"instances": [{"input": "a b", "output": "pos"}]}').items] == ["pos"]
    fenced = '```json\n[{"input": "Cold soup.", "output": "negative"}]\n```'
    parsed = parse_demo_pairs(fenced)
    assert parsed.method == "json" and [(p.input, p.output) for p in parsed.items] == [("Cold soup.", "negative")]
    assert not parse_demo_pairs("Input: only an input, the answer was cut").ok


def test_demo_pair_with_a_json_output_is_read_from_its_labels():
    text = 'Input: The pasta was cold.\nOutput: [{"text": "pasta was cold", "label": "negative"}]'
    parsed = parse_demo_pairs(text)
    assert parsed.method == "text"
    assert [(p.input, json.loads(p.output)) for p in parsed.items] == [
        ("The pasta was cold.", [{"text": "pasta was cold", "label": "negative"}])
    ]


def test_demo_json_inside_prose_is_not_an_answer():
    # Only an answer that is JSON as a whole is read as JSON: here the list is an example inside prose.
    text = 'The task asks for labels such as [{"input": "x y", "output": "positive"}] but I cannot comply.'
    assert not parse_demo_pairs(text).ok
