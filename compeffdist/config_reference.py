"""docs/config.md, generated from the config models: every field's path, type, default and description.

`compeffdist config-reference --out docs/config.md` rewrites it; a test fails when the file is out of
date or a field has no description, so the reference can never drift from the code.
"""

from __future__ import annotations

import json
import types
import typing
from typing import Any, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

HEADER = """# Configuration reference

Generated from the config models by `compeffdist config-reference --out docs/config.md`; do not
edit by hand. A job config is one YAML file; unknown keys are errors, values are strict (no
coercion), and paths are relative to the file. Fields marked *resource* never make a stage stale:
change them on a running job (a bigger pool, other batch sizes) and finished work is kept.
"""


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is typing.Literal:
        return " \\| ".join(json.dumps(a) for a in get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type_name(a) for a in get_args(annotation))
    if origin is not None:
        inner = ", ".join(_type_name(a) for a in get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"section ({annotation.__name__})"
    return getattr(annotation, "__name__", str(annotation))


def _default(field: Any) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return "(section defaults)"
    text = json.dumps(value, default=str)
    return f"`{text}`" if len(text) <= 60 else f"`{text[:57]}...`"


def _sections(model: type[BaseModel]) -> list[type[BaseModel]]:
    """`model` and every model reachable from its fields, depth first, each once."""
    found: list[type[BaseModel]] = []

    def visit(node: type[BaseModel]) -> None:
        if node in found:
            return
        found.append(node)
        for field in node.model_fields.values():
            for candidate in (field.annotation, *_all_args(field.annotation)):
                if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                    visit(candidate)

    visit(model)
    return found


def _all_args(annotation: Any) -> list[Any]:
    args = list(get_args(annotation))
    for arg in list(args):
        args += _all_args(arg)
    return args


def missing_descriptions(model: type[BaseModel]) -> list[str]:
    """`Section.field` for every field without a description."""
    return [
        f"{section.__name__}.{name}"
        for section in _sections(model)
        for name, field in section.model_fields.items()
        if not (field.description or "").strip()
    ]


def render(model: type[BaseModel]) -> str:
    """The markdown reference of `model` and all its sections."""
    lines = [HEADER]
    for section in _sections(model):
        doc = (section.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        lines += [
            f"## {section.__name__}",
            "",
            doc,
            "",
            "| field | type | default | description |",
            "|---|---|---|---|",
        ]
        for name, field in section.model_fields.items():
            extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
            marker = " *(resource)*" if extra.get("identity") is False else ""
            description = (field.description or "").replace("\n", " ").replace("|", "\\|")
            lines.append(f"| `{name}`{marker} | {_type_name(field.annotation)} | {_default(field)} | {description} |")
        lines.append("")
    return "\n".join(lines)
