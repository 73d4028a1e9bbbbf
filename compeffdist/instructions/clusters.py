"""Perspectives as downstream stages see them: clusters of normalized attributes, read from the
`perspectives` table (one row per attribute) and grouped by cluster_id."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ClusterAttribute:
    name: str
    count: int
    description: str


@dataclass(frozen=True)
class Cluster:
    cluster_id: int
    attributes: tuple[ClusterAttribute, ...]  # most frequent first

    @property
    def perspective(self) -> str:
        """The cluster's name: its most frequent attribute."""
        return self.attributes[0].name

    @property
    def total_count(self) -> int:
        return sum(a.count for a in self.attributes)

    def top(self, k: int) -> list[ClusterAttribute]:
        return list(self.attributes[:k])


def group_clusters(rows: list[dict[str, Any]], limit: int | None = None) -> list[Cluster]:
    """Clusters by id (ids are ordered by total count), attributes by count then name; the first `limit`."""
    members: dict[int, list[ClusterAttribute]] = {}
    for row in rows:
        members.setdefault(int(row["cluster_id"]), []).append(
            ClusterAttribute(row["attribute"], int(row["count"]), row["description"] or "")
        )
    clusters = [
        Cluster(cid, tuple(sorted(attrs, key=lambda a: (-a.count, a.name)))) for cid, attrs in sorted(members.items())
    ]
    return clusters[:limit] if limit is not None else clusters


def official_cluster_list(clusters: list[Cluster]) -> list[dict[str, Any]]:
    """The official clustering output shape: {cluster_id, attr_names: ["name|(count)", ...], total_count}."""
    return [
        {
            "cluster_id": c.cluster_id,
            "attr_names": [f"{a.name}|({a.count})" for a in c.attributes],
            "total_count": c.total_count,
        }
        for c in clusters
    ]
