"""Stage `pool`: the user-text pool from SentiBench train splits (labels dropped) and user files."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pyarrow as pa

from compeffdist.config import JobConfig
from compeffdist.data.sentibench import read_split, split_path
from compeffdist.data.textio import read_texts
from compeffdist.failures import StageFailed
from compeffdist.stage import Stage, StageContext, StageOutput

POOL_SCHEMA = pa.schema(
    [("text_id", pa.string()), ("domain", pa.string()), ("text", pa.string()), ("source", pa.string())]
)


def text_id(text: str) -> str:
    """Stable id of a text: the same text gets the same id in every run and domain."""
    return hashlib.sha1(" ".join(text.split()).lower().encode("utf-8")).hexdigest()[:16]


def _external_inputs(config: JobConfig) -> list[Path]:
    paths = [split_path(config.run.data_root, d, config.pool.split) for d in config.pool.datasets]
    return paths + [source.path for source in config.pool.files]


def build_pool(ctx: StageContext) -> StageOutput:
    """Collect, clean, de-duplicate and sample user texts; every dropped row is a counted reject."""
    cfg = ctx.config.pool
    candidates: list[dict[str, str]] = []
    warnings: list[str] = []
    for dataset in cfg.datasets:
        path = split_path(ctx.config.run.data_root, dataset, cfg.split)
        records = read_split(ctx.config.run.data_root, dataset, cfg.split)
        if not records:
            warnings.append(f"pool.datasets: {path} is empty")
        for index, record in enumerate(records):
            sentence = record.get("sentence") if isinstance(record, dict) else None
            if not isinstance(sentence, str) or not sentence.strip():
                ctx.reject(str(path), f"item {index}", "sentence", "missing or empty text", record)
                continue
            candidates.append({"domain": dataset.split("/")[-1], "text": sentence.strip(), "source": f"{path}#{index}"})
    for number, source in enumerate(cfg.files):
        result = read_texts(source.path, source.text_field, source.format)
        ctx.add_rejects(result.rejects)
        if not result.rows:
            problem = f"no usable text ({len(result.rejects)} rejected)" if result.rejects else "is empty"
            warnings.append(f"pool.files.{number}: {source.path} ({source.format}) {problem}")
        candidates.extend(
            {"domain": source.domain, "text": row["text"], "source": f"{source.path}#{row['location']}"}
            for row in result.rows
        )

    by_domain: dict[str, list[dict[str, str]]] = {}
    seen: set[str] = set()
    duplicates = too_short = too_long = 0
    for row in candidates:
        if len(row["text"]) < cfg.min_chars:
            too_short += 1
            ctx.reject(row["source"], "-", "text", f"shorter than min_chars={cfg.min_chars}", row["text"])
            continue
        if len(row["text"]) > cfg.max_chars:
            too_long += 1
            ctx.reject(row["source"], "-", "text", f"longer than max_chars={cfg.max_chars}", row["text"])
            continue
        identity = text_id(row["text"])
        if identity in seen:
            duplicates += 1
            continue
        seen.add(identity)
        by_domain.setdefault(row["domain"], []).append({"text_id": identity, **row})

    rng = random.Random(ctx.config.run.seed)
    rows: list[dict[str, str]] = []
    for domain in sorted(by_domain):
        items = sorted(by_domain[domain], key=lambda r: r["text_id"])
        if cfg.texts_per_dataset is not None and len(items) > cfg.texts_per_dataset:
            items = sorted(rng.sample(items, cfg.texts_per_dataset), key=lambda r: r["text_id"])
        rows.extend(items)
    for warning in warnings:
        ctx.log(f"warning: {warning}")
    if not rows:
        sources = len(cfg.datasets) + len(cfg.files)
        raise StageFailed(f"the user-text pool is empty: no usable text in {sources} source(s) of pool.datasets/files")
    ctx.log(f"{len(rows)} texts from {len(by_domain)} domains ({duplicates} duplicates dropped)")
    return StageOutput(
        table=pa.Table.from_pylist(rows, schema=POOL_SCHEMA),
        counts={"candidates": len(candidates), "duplicates": duplicates, "too_short": too_short, "too_long": too_long},
        extra={"warnings": warnings},
    )


STAGES = [
    Stage(
        name="pool",
        run=build_pool,
        sections=("pool", "run.seed"),
        description="user-text pool from SentiBench train splits and user files",
        external_inputs=_external_inputs,
    )
]
