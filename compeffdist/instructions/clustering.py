"""Cluster attribute embeddings into perspectives (METHOD.md S3.3, `clustering.py`).

Affinity propagation as in the official code: preference = np.percentile(S, p), p in percent, over
the similarities S = -||e_i - e_j||^2 of the original attributes (before duplication); each
embedding is then duplicated int(log1p(count)) extra times and the duplicated set is clustered with
scikit-learn's own euclidean affinity; labels are read for the original rows only. k-means
(sample_weight = count ** exponent) and agglomerative clustering are the alternatives. Cluster ids
are renumbered by total count (descending, ties by top attribute name), so ids are stable for a
given input and seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from compeffdist.config import ClusteringConfig


class ClusteringError(RuntimeError):
    """The clustering did not produce a usable partition (e.g. affinity propagation did not converge)."""


def _duplicated(embeddings: np.ndarray, counts: Sequence[int]) -> np.ndarray:
    """Frequency weighting: row i appears 1 + int(log1p(count_i)) times; originals first."""
    extra = [np.repeat(embeddings[i : i + 1], int(math.log1p(c)), axis=0) for i, c in enumerate(counts)]
    return np.concatenate([embeddings, *[e for e in extra if len(e)]], axis=0)


def preference_of(embeddings: np.ndarray, percentile: float) -> float:
    """The official preference: np.percentile (p in percent) of -||e_i - e_j||^2 over the original attributes."""
    from sklearn.metrics import pairwise_distances

    return float(np.percentile(-(pairwise_distances(embeddings, metric="euclidean") ** 2), percentile))


def _affinity_propagation(
    embeddings: np.ndarray, counts: Sequence[int], cfg: ClusteringConfig, seed: int
) -> np.ndarray:
    import warnings

    from sklearn.cluster import AffinityPropagation
    from sklearn.exceptions import ConvergenceWarning

    points = _duplicated(embeddings, counts) if cfg.frequency_duplication else embeddings
    preference = preference_of(embeddings, cfg.preference_percentile)
    model = AffinityPropagation(
        affinity="euclidean",  # -||x_i - x_j||^2 of the duplicated points, as the official fit computes it
        damping=cfg.damping,
        max_iter=cfg.max_iter,
        preference=preference,
        random_state=seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        try:
            labels = model.fit_predict(points)
        except ConvergenceWarning as exc:
            raise ClusteringError(
                f"affinity propagation did not converge in {cfg.max_iter} iterations (damping {cfg.damping}); "
                "raise instructions.clustering.max_iter or damping"
            ) from exc
    return labels[: len(embeddings)]


def cluster_embeddings(embeddings: np.ndarray, counts: Sequence[int], cfg: ClusteringConfig, seed: int) -> np.ndarray:
    """Raw cluster labels (0..k-1, arbitrary order) for each row of `embeddings`."""
    n = len(embeddings)
    if n == 0:
        return np.zeros(0, dtype=int)
    if n == 1:
        return np.zeros(1, dtype=int)
    embeddings = np.asarray(embeddings, dtype=np.float64)
    if cfg.algorithm == "affinity_propagation":
        return _affinity_propagation(embeddings, counts, cfg, seed)
    k = min(cfg.n_clusters, n)
    if cfg.algorithm == "kmeans":
        from sklearn.cluster import KMeans

        weights = np.asarray(counts, dtype=np.float64) ** cfg.kmeans_weight_exponent
        return KMeans(n_clusters=k, random_state=seed, n_init=10).fit_predict(embeddings, sample_weight=weights)
    from sklearn.cluster import AgglomerativeClustering

    return AgglomerativeClustering(n_clusters=k).fit_predict(embeddings)


def renumber_by_size(labels: Sequence[int], counts: Sequence[int], names: Sequence[str]) -> list[int]:
    """Map raw labels to ids 0..k-1 ordered by total count desc, then by the cluster's top attribute name."""
    members: dict[int, list[int]] = {}
    for index, label in enumerate(labels):
        members.setdefault(int(label), []).append(index)

    def key(label: int) -> tuple[int, str]:
        rows = members[label]
        top = min(rows, key=lambda i: (-counts[i], names[i]))
        return (-sum(counts[i] for i in rows), names[top])

    order = {label: new for new, label in enumerate(sorted(members, key=key))}
    return [order[int(label)] for label in labels]
