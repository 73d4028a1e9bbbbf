"""Shapes of the teacher's structured answers: pydantic models that validate them and give the JSON schemas,
and the Arrow types of those kept in tables (demos, task ideas).

The schemas go into GenerationRequest.json_schema (vLLM guided decoding). Validation is lenient
about key spellings small models use ("name" for "task_name", "type" for "task_type") and
strict about content: empty strings are errors, so one bad item is dropped, not the answer.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

TASK_KINDS: tuple[str, ...] = ("classification", "rating", "extraction", "structured")
TEMPLATE_KINDS: tuple[str, ...] = ("analysis", *TASK_KINDS)
# A demo as table cells (tasks' seed demos, templates' demos): a list of these structs, typed once.
DEMO_TYPE = pa.struct([("input", pa.string()), ("output", pa.string())])
DEMOS_TYPE = pa.list_(DEMO_TYPE)


class Lenient(BaseModel):
    """Extra keys are ignored; strings are stripped and must not be empty."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True, populate_by_name=True)


class AttributeItem(Lenient):
    name: str = Field(min_length=1, validation_alias=AliasChoices("name", "attribute", "attribute_name"))
    description: str = Field("", validation_alias=AliasChoices("description", "attribute_description", "desc"))
    value: str = Field("", validation_alias=AliasChoices("value", "attribute_value"))

    @field_validator("description", "value", mode="before")
    @classmethod
    def _text(cls, value: Any) -> str:
        return "" if value is None else str(value)


class AttributeList(Lenient):
    attributes: list[AttributeItem]


class AnalysisPromptList(Lenient):
    prompts: list[str] = Field(validation_alias=AliasChoices("prompts", "analysis_prompts", "questions"))


class Demo(Lenient):
    input: str = Field(min_length=1, validation_alias=AliasChoices("input", "task_input", "text"))
    output: str = Field(min_length=1, validation_alias=AliasChoices("output", "task_output", "label", "answer"))

    @field_validator("output", mode="before")
    @classmethod
    def _structured_output_as_json(cls, value: Any) -> Any:
        """Structured outputs come back as dicts/lists; a demo keeps them as compact JSON text."""
        if isinstance(value, (dict, list)):
            return json.dumps(value, ensure_ascii=False)
        return value if isinstance(value, str) else str(value)


class TaskIdea(Lenient):
    task_name: str = Field(min_length=1, validation_alias=AliasChoices("task_name", "name", "task"))
    task_type: str = Field("", validation_alias=AliasChoices("task_type", "type", "kind", "category"))
    task_description: str = Field(
        min_length=1, validation_alias=AliasChoices("task_description", "description", "instruction")
    )


IDEA_TYPE = pa.struct([("task_name", pa.string()), ("task_type", pa.string()), ("task_description", pa.string())])


class TaskIdeaList(Lenient):
    tasks: list[TaskIdea]


class StandardizedTask(TaskIdea):
    examples: list[Demo] = Field(
        default_factory=list, validation_alias=AliasChoices("examples", "task_examples", "demos")
    )


class DemoList(Lenient):
    instances: list[Demo] = Field(validation_alias=AliasChoices("instances", "examples", "demos"))


def request_schema(model: type[BaseModel], kinds: bool = False) -> dict[str, Any]:
    """A compact JSON schema for guided decoding (canonical key names, task_type as an enum)."""
    schema = model.model_json_schema(by_alias=False, mode="serialization")
    if kinds:
        _pin_task_type(schema)
    return schema


def _pin_task_type(node: Any) -> None:
    if isinstance(node, dict):
        props = node.get("properties")
        if isinstance(props, dict) and "task_type" in props:
            props["task_type"] = {"type": "string", "enum": list(TASK_KINDS)}
            node["required"] = sorted({*node.get("required", []), "task_type"})
        for value in node.values():
            _pin_task_type(value)
    elif isinstance(node, list):
        for value in node:
            _pin_task_type(value)
