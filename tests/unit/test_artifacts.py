"""Artifact store: atomic publish, manifests, staleness."""

from __future__ import annotations

import pyarrow as pa
import pytest

from compeffdist.artifacts import ArtifactStore, Manifest, rejects_table

pytestmark = pytest.mark.unit


def _manifest(stage: str = "s", config_hash: str = "c1") -> Manifest:
    return Manifest(stage=stage, config_hash=config_hash, input_fingerprints={}, seed=1)


def test_commit_writes_parts_rejects_and_manifest_last(tmp_path):
    store = ArtifactStore(tmp_path)
    table = pa.table({"id": ["a", "b"], "x": [1, 2]})
    rejects = rejects_table(
        [{"stage": "s", "source": "f.jsonl", "location": "line 3", "field": "text", "reason": "empty"}]
    )
    manifest = store.commit(_manifest(), table, rejects=rejects)
    assert manifest.counts == {"rows": 2, "rejects": 1}
    assert store.read_table("s").to_pydict() == table.to_pydict()
    assert store.read_rejects("s").column("location").to_pylist() == ["line 3"]
    assert store.manifest("s").fingerprint == manifest.fingerprint


def test_recommit_replaces_atomically_and_leaves_no_staging(tmp_path):
    store = ArtifactStore(tmp_path)
    store.commit(_manifest(), pa.table({"id": ["a"]}))
    store.commit(_manifest(config_hash="c2"), pa.table({"id": ["b", "c"]}))
    assert store.read_table("s").column("id").to_pylist() == ["b", "c"]
    assert store.manifest("s").config_hash == "c2"
    assert [p.name for p in tmp_path.iterdir()] == ["s"]


def test_fingerprint_changes_with_content_identity(tmp_path):
    a, b = _manifest(), _manifest()
    assert a.fingerprint == b.fingerprint
    b.counts["rows"] = 3
    assert a.fingerprint != b.fingerprint


def test_missing_stage_has_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="stage 'nope'"):
        ArtifactStore(tmp_path).read_table("nope")
