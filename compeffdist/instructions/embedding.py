"""Embed attribute names on a Ray actor pool with a sentence-embedding model (METHOD.md S3.2).

Only the normalized name is embedded, as in the official code; embeddings are L2-normalized.
The model is whatever config.models.embedding names: MiniLM from its PyPI package locally, a hub
model such as WhereIsAI/UAE-Large-V1 (CLS pooling in its sentence-transformers config) on clusters.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from compeffdist.config import ResourceConfig
from compeffdist.stage import StageContext


class EmbeddingWorker:
    """Ray Data actor: loads the sentence-embedding model once, embeds a batch of (attribute_id, name) rows."""

    def __init__(self, model: dict[str, Any], batch_size: int, use_gpu: bool) -> None:
        from sentence_transformers import SentenceTransformer

        from compeffdist.config import ModelSpec
        from compeffdist.models.registry import resolve_model

        spec = ModelSpec.model_validate(model)
        self.model = SentenceTransformer(
            resolve_model(spec), device="cuda" if use_gpu else "cpu", trust_remote_code=spec.trust_remote_code
        )
        self.batch_size = batch_size

    def __call__(self, batch: pa.Table) -> pa.Table:
        names = batch.column("name").to_pylist()
        vectors = self.model.encode(names, batch_size=self.batch_size, normalize_embeddings=True)
        return pa.table(
            {
                "attribute_id": batch.column("attribute_id"),
                "embedding": pa.array([v.astype(np.float32).tolist() for v in vectors], pa.list_(pa.float32())),
            }
        )


def embed_names(ctx: StageContext, ids: list[str], names: list[str]) -> np.ndarray:
    """Embeddings (rows aligned with `ids`) computed on Ray; resumable through the stage's work folder."""
    from compeffdist.rowmap import map_resumable

    cfg = ctx.config.instructions
    actors = ResourceConfig(
        batch_size=cfg.embedding_batch_size,
        min_actors=1,
        max_actors=1,
        num_cpus_per_actor=1.0,
        num_gpus_per_actor=cfg.embedding_num_gpus,
    )
    kwargs = {
        "model": ctx.config.models.embedding.model_dump(mode="json"),
        "batch_size": cfg.embedding_batch_size,
        "use_gpu": cfg.embedding_num_gpus > 0,
    }
    rows = pa.table({"attribute_id": ids, "name": names})
    table, _ = map_resumable(ctx, rows, EmbeddingWorker, kwargs, actors, "attribute_id", "embedding")
    by_id = dict(zip(table.column("attribute_id").to_pylist(), table.column("embedding").to_pylist(), strict=True))
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise RuntimeError(f"embedding returned no vector for {len(missing)} attributes (e.g. {missing[:3]})")
    return np.asarray([by_id[i] for i in ids], dtype=np.float32)
