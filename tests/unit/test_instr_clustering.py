"""Clustering of attribute embeddings: determinism, frequency duplication, id renumbering, alternatives."""

from __future__ import annotations

import numpy as np
import pytest

from compeffdist.config import ClusteringConfig
from compeffdist.instructions.clustering import _duplicated, cluster_embeddings, preference_of, renumber_by_size

pytestmark = pytest.mark.unit


def _blobs(seed: int = 0) -> tuple[np.ndarray, list[int], list[str]]:
    """Three well-separated groups of unit vectors in 16-d."""
    rng = np.random.default_rng(seed)
    centers = np.eye(16)[:3] * 3
    points = np.concatenate([c + 0.05 * rng.standard_normal((6, 16)) for c in centers])
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    counts = [int(c) for c in rng.integers(11, 500, size=len(points))]
    return points, counts, [f"attr{i:02d}" for i in range(len(points))]


def test_frequency_duplication_adds_log1p_copies():
    embeddings = np.arange(6, dtype=float).reshape(3, 2)
    duplicated = _duplicated(embeddings, [0, 11, 11702])
    assert len(duplicated) == 3 + 0 + 2 + 9  # int(log1p(11)) = 2, int(log1p(11702)) = 9
    assert np.array_equal(duplicated[:3], embeddings)


@pytest.mark.parametrize("algorithm", ["affinity_propagation", "kmeans", "agglomerative"])
def test_clustering_finds_the_groups_and_is_deterministic(algorithm):
    points, counts, _ = _blobs()
    cfg = ClusteringConfig(algorithm=algorithm, n_clusters=3, preference_percentile=50.0)
    first = cluster_embeddings(points, counts, cfg, seed=42)
    again = cluster_embeddings(points.copy(), list(counts), cfg, seed=42)
    assert np.array_equal(first, again)
    groups = [set(first[i * 6 : (i + 1) * 6].tolist()) for i in range(3)]
    assert all(len(g) == 1 for g in groups) and len(set.union(*groups)) == 3


def test_affinity_propagation_equals_the_official_clustering():
    # Four noisy groups in 16-d with counts up to 5000 (up to 8 extra copies each). The official
    # affinity_propagation_clustering (clustering/clustering.py, run outside this repository on these exact
    # points) gave these labels; a preference taken over the duplicated set instead gave 21 clusters, not 20.
    rng = np.random.default_rng(0)
    points = np.concatenate([c + 0.6 * rng.standard_normal((6, 16)) for c in np.eye(16)[:4] * 3])
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    counts = [int(c) for c in rng.integers(11, 5000, size=len(points))]
    cfg = ClusteringConfig(preference_percentile=5.0, damping=0.9, max_iter=1000, frequency_duplication=True)
    labels = cluster_embeddings(points, counts, cfg, seed=42)
    assert labels.tolist() == [6, 7, 0, 8, 9, 0, 10, 1, 2, 11, 12, 11, 13, 14, 15, 3, 4, 5, 16, 17, 18, 17, 19, 17]
    assert preference_of(points, 5.0) == pytest.approx(-2.5867, abs=1e-4)


def test_low_preference_percentile_gives_fewer_clusters():
    points, counts, _ = _blobs()
    many = cluster_embeddings(points, counts, ClusteringConfig(preference_percentile=90.0), seed=42)
    few = cluster_embeddings(points, counts, ClusteringConfig(preference_percentile=0.5), seed=42)
    assert len(set(few.tolist())) <= 3 < len(set(many.tolist()))


def test_renumbering_orders_clusters_by_total_count_then_top_name():
    labels = [5, 5, 9, 7, 7]
    counts = [10, 1, 50, 6, 5]
    names = ["b", "c", "a", "z", "y"]
    # totals: 5 -> 11 (top "b"), 9 -> 50, 7 -> 11 (top "z"); ties broken by top attribute name
    assert renumber_by_size(labels, counts, names) == [1, 1, 0, 2, 2]


def test_single_and_empty_inputs():
    cfg = ClusteringConfig()
    assert cluster_embeddings(np.ones((1, 4)), [3], cfg, seed=1).tolist() == [0]
    assert cluster_embeddings(np.ones((0, 4)), [], cfg, seed=1).tolist() == []


# Mentions -> normalized attributes -> clustering -> renumbering, as build_perspectives runs it, with embeddings
# fixed per name (three groups). Run in fresh interpreters with different PYTHONHASHSEED values: iterating a set or
# dict of names anywhere on this path would change the labels between processes, which one process cannot see.
PERSPECTIVES_SCRIPT = """
import hashlib, json
import numpy as np
from compeffdist.config import ClusteringConfig
from compeffdist.instructions.clustering import cluster_embeddings, renumber_by_size
from compeffdist.instructions.normalize import Mention, aggregate_attributes, frequent_attributes

GROUPS = {0: ["tone", "attitude", "formality"], 1: ["anger", "regret", "frustration"], 2: ["sarcasm", "irony", "humor"]}
RAW = ["tone", "tone: angry", "Attitude", "formality", "regret/anger", "frustration", "use of sarcasm", "irony",
       "humor", "use of humor", "anger"]
mentions = [Mention(f"t{t:02d}", raw, "", "") for t in range(12) for i, raw in enumerate(RAW) if (t + i) % 3]
kept = frequent_attributes(aggregate_attributes(mentions), 1)
group_of = {name: g for g, names in GROUPS.items() for name in names}

def embed(name):
    rng = np.random.default_rng(int(hashlib.sha256(name.encode()).hexdigest()[:8], 16))
    vector = np.eye(8)[group_of[name]] * 3 + 0.1 * rng.standard_normal(8)
    return vector / np.linalg.norm(vector)

counts, names = [a.count for a in kept], [a.name for a in kept]
raw = cluster_embeddings(np.stack([embed(n) for n in names]), counts, ClusteringConfig(preference_percentile=30.0), 42)
print(json.dumps([[n, c, label] for n, c, label in zip(names, counts, renumber_by_size(raw.tolist(), counts, names))]))
"""
# The three clusters tie on total count (32); ids then follow their top attribute's name.
EXPECTED_PERSPECTIVES = [
    ["anger", 16, 0], ["humor", 16, 1], ["tone", 16, 2], ["attitude", 8, 2], ["formality", 8, 2],
    ["frustration", 8, 0], ["irony", 8, 1], ["regret", 8, 0], ["sarcasm", 8, 1],
]  # fmt: skip


@pytest.mark.parametrize("hash_seed", ["0", "4242"])
def test_perspective_labels_are_pinned_across_processes_and_hash_seeds(hash_seed):
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    out = subprocess.run(
        [sys.executable, "-c", PERSPECTIVES_SCRIPT], env=env, capture_output=True, text=True, timeout=300, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == EXPECTED_PERSPECTIVES
