"""Every id of instruction construction, built here and nowhere else.

Ids say what a record is about (text, cluster, task, request number), never where it sits in a
list of prompts. Request ids name one question to the teacher; a re-ask of it is the same id with
`~retry<k>`. Rows that need an order within their parent carry integer columns too (a demo's
request and pair numbers), so ordering never parses an id.
"""

from __future__ import annotations

import hashlib
import json

RETRY_MARK = "~retry"


# ---------------------------------------------------------------- teacher requests


def attributes_request(text_id: str) -> str:
    """S1: list the attributes of one user text."""
    return f"attr-{text_id}"


def analysis_request(cluster_id: int) -> str:
    """S4: analysis prompts for one perspective."""
    return f"analysis-c{cluster_id}"


def ideas_request(cluster_id: int) -> str:
    """S6: task ideas for one perspective."""
    return f"task1-c{cluster_id}"


def standardize_request(task: str) -> str:
    """S7: standardize one task idea (`task` is its task id)."""
    return f"task2-{task}"


def demo_request(task: str, k: int) -> str:
    """S9: the k-th demo request of a task."""
    return f"demo-{task}-d{k}"


def reask(request_id: str, k: int) -> str:
    """The k-th re-ask (k >= 1) of a request whose answer did not parse."""
    return f"{request_id}{RETRY_MARK}{k}"


def asked_of(request_id: str) -> str:
    """The request a (re-)ask belongs to: `reask(r, k)` -> r."""
    return request_id.partition(RETRY_MARK)[0]


# ---------------------------------------------------------------- records


def attribute_id(name: str) -> str:
    """A normalized attribute: a hash of its name."""
    return hashlib.sha1(name.encode("utf-8")).hexdigest()[:12]


def prompt_id(cluster_id: int, index: int) -> str:
    """An analysis prompt: its cluster and its number among the cluster's kept prompts."""
    return f"c{cluster_id}-p{index}"


def task_id(cluster_id: int, index: int) -> str:
    """A task: its cluster and its number among the cluster's kept ideas (stable through S7-S11)."""
    return f"c{cluster_id}-t{index}"


def demo_id(task: str, k: int, j: int) -> str:
    """A generated demo: its task, the demo request k that wrote it and its pair number j in that answer."""
    return f"{task}-d{k}-{j}"


def template_id(cluster_id: int, kind: str, source_id: str) -> str:
    """Stable id from what a template is (cluster, kind, the prompt or task it comes from), not its content:
    regenerating demos keeps every template id, and with it the labeling stage's record ids."""
    return _digest([cluster_id, kind, source_id])


def content_hash(cluster_id: int, kind: str, task_name: str, task_description: str, demos: list[dict]) -> str:
    """A hash of a template's content: tells two versions of one template_id apart."""
    return _digest(
        [cluster_id, kind, task_name, task_description, json.dumps(demos, ensure_ascii=False, sort_keys=True)]
    )


def _digest(parts: list) -> str:
    return hashlib.sha1(json.dumps(parts, ensure_ascii=False, sort_keys=True).encode("utf-8")).hexdigest()[:16]
