"""The config documents itself: every field described, docs/config.md generated from the models, no import circle."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from compeffdist.config import JobConfig
from compeffdist.config_reference import missing_descriptions, render

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def test_every_field_has_a_description():
    assert missing_descriptions(JobConfig) == []


def test_docs_config_md_is_up_to_date():
    current = (REPO / "docs" / "config.md").read_text(encoding="utf-8")
    assert current == render(JobConfig), (
        "docs/config.md is stale: run `compeffdist config-reference --out docs/config.md`"
    )


def test_resource_fields_are_marked_in_the_reference():
    text = render(JobConfig)
    assert "| `max_actors` | int | `1` |" in text and "| `resources` *(resource)* |" in text


def test_the_config_package_imports_nothing_from_the_pipeline():
    """The config is read by every module; it must not import them back (no import circle)."""
    code = "import json, sys, compeffdist.config; print(json.dumps([m for m in sys.modules if 'compeffdist.' in m]))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    modules = json.loads(loaded.stdout)
    assert all(m.startswith(("compeffdist.config", "compeffdist.data")) for m in modules), modules
