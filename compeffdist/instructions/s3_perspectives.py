"""Stage `perspectives` (METHOD.md S3): normalize attribute names, keep the frequent ones, embed them on
Ray, cluster them into perspectives; one row per kept attribute with its cluster."""

from __future__ import annotations

import json

import pyarrow as pa

from compeffdist.failures import StageFailed
from compeffdist.instructions.clusters import group_clusters, official_cluster_list
from compeffdist.stage import Stage, StageContext, StageOutput

VARIANTS_TYPE = pa.list_(pa.struct([("name", pa.string()), ("count", pa.int64())]))
PERSPECTIVE_SCHEMA = pa.schema(
    [
        ("attribute_id", pa.string()),
        ("attribute", pa.string()),
        ("count", pa.int64()),
        ("variants", VARIANTS_TYPE),  # raw names normalized to this attribute, and how often each was seen
        ("description", pa.string()),
        ("top_descriptions", pa.list_(pa.string())),
        ("cluster_id", pa.int64()),
        ("rank_in_cluster", pa.int64()),
    ]
)


def build_perspectives(ctx: StageContext) -> StageOutput:
    """S3: normalize names, keep frequent attributes, embed them on Ray, cluster into perspectives."""
    from compeffdist.instructions.clustering import cluster_embeddings, renumber_by_size
    from compeffdist.instructions.embedding import embed_names
    from compeffdist.instructions.normalize import Mention, aggregate_attributes, frequent_attributes

    cfg = ctx.config.instructions
    mentions = [
        Mention(r["text_id"], r["raw_name"], r["description"], r["value"])
        for r in sorted(ctx.read("attributes").to_pylist(), key=lambda r: (r["text_id"], r["item_index"]))
    ]
    attributes = aggregate_attributes(mentions, cfg.attribute_count)
    kept = frequent_attributes(attributes, cfg.min_attribute_count)
    if not kept:
        raise StageFailed(
            f"no attribute has more than instructions.min_attribute_count={cfg.min_attribute_count} "
            f"{cfg.attribute_count} "
            f"({len(mentions)} mentions, {len(attributes)} distinct names): lower min_attribute_count, raise "
            "texts_for_attributes, or check the attributes stage's rejects (the teacher's answers did not parse)"
        )
    ids = [a.attribute_id for a in kept]
    embeddings = embed_names(ctx, ids, [a.name for a in kept])
    counts = [a.count for a in kept]
    names = [a.name for a in kept]
    raw_labels = cluster_embeddings(embeddings, counts, cfg.clustering, ctx.config.run.seed)
    labels = renumber_by_size(raw_labels.tolist(), counts, names)
    rank: dict[int, int] = {}
    rows = []
    for attribute, label in sorted(zip(kept, labels, strict=True), key=lambda p: (p[1], -p[0].count, p[0].name)):
        rows.append(
            {
                "attribute_id": attribute.attribute_id,
                "attribute": attribute.name,
                "count": attribute.count,
                "variants": [{"name": name, "count": n} for name, n in sorted(attribute.variants.items())],
                "description": attribute.description,
                "top_descriptions": attribute.top_descriptions(3),
                "cluster_id": label,
                "rank_in_cluster": rank.setdefault(label, 0),
            }
        )
        rank[label] += 1
    clusters = group_clusters(rows)
    (ctx.files_dir / "clusters.json").write_text(
        json.dumps(official_cluster_list(clusters), ensure_ascii=False, indent=1), encoding="utf-8"
    )
    ctx.log(f"{len(attributes)} normalized attributes, {len(kept)} kept, {len(clusters)} clusters")
    return StageOutput(
        table=pa.Table.from_pylist(rows, schema=PERSPECTIVE_SCHEMA),
        counts={
            "mentions": len(mentions),
            "normalized_attributes": len(attributes),
            "kept_attributes": len(kept),
            "clusters": len(clusters),
        },
        models={"embedding": ctx.config.models.embedding.name},
        extra={"clustering": cfg.clustering.model_dump(), "embedding_dim": int(embeddings.shape[1])},
    )


STAGE = Stage(
    name="perspectives",
    run=build_perspectives,
    inputs=("attributes",),
    sections=(
        "instructions.min_attribute_count",
        "instructions.attribute_count",
        "instructions.clustering",
        "instructions.embedding_batch_size",
        "instructions.embedding_num_gpus",
        "models.embedding",
        "run.seed",
    ),
    description="normalize, filter, embed (Ray) and cluster attributes into perspectives (S3)",
)
