"""The instruction-construction stages in order (METHOD.md S1-S11), one module per paper stage:

| stage              | paper step                          | module                   |
|--------------------|-------------------------------------|--------------------------|
| `attributes`       | S1 enumeration, S2 parsing          | `s1_attributes.py`       |
| `perspectives`     | S3 normalize, embed, cluster        | `s3_perspectives.py`     |
| `analysis_prompts` | S4 generation, S5 extraction        | `s4_analysis_prompts.py` |
| `task_ideas`       | S6 task ideation                    | `s6_task_ideas.py`       |
| `tasks`            | S7 standardization, S8 extraction   | `s7_tasks.py`            |
| `demos`            | S9 generation, S10 extraction       | `s9_demos.py`            |
| `templates`        | S11 final instruction collection    | `s11_templates.py`       |

Each teacher stage asks its teacher once (one actor pool, one model load, re-asks included:
`teacher.py`). Ids are built in `ids.py`; joins use them, never prompt text or position.
Iteration is sorted and sampling is seeded by run.seed.
"""

from __future__ import annotations

from compeffdist.instructions import (
    s1_attributes,
    s3_perspectives,
    s4_analysis_prompts,
    s6_task_ideas,
    s7_tasks,
    s9_demos,
    s11_templates,
)

STAGES = [
    s1_attributes.STAGE,
    s3_perspectives.STAGE,
    s4_analysis_prompts.STAGE,
    s6_task_ideas.STAGE,
    s7_tasks.STAGE,
    s9_demos.STAGE,
    s11_templates.STAGE,
]
