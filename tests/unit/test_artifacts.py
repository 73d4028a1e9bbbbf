"""Artifact store: versioned data published by the manifest, on local disk and on S3 (a real S3 endpoint)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from compeffdist.artifacts import MANIFEST, ArtifactStore, Manifest, rejects_table
from compeffdist.storage import Location

pytestmark = pytest.mark.unit


def _manifest(stage: str = "s", config_hash: str = "c1") -> Manifest:
    return Manifest(stage=stage, config_hash=config_hash, input_fingerprints={}, seed=1)


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path) -> ArtifactStore:
    if request.param == "local":
        return ArtifactStore(tmp_path / "run")
    return ArtifactStore(Location.of(request.getfixturevalue("s3_root")).join(request.node.originalname))


def test_commit_writes_parts_rejects_files_and_manifest(store, tmp_path):
    table = pa.table({"id": ["a", "b"], "x": [1, 2]})
    rejects = rejects_table(
        [{"stage": "s", "source": "f.jsonl", "location": "line 3", "field": "text", "reason": "empty"}]
    )
    files = tmp_path / "staged-files"
    files.mkdir()
    (files / "report.md").write_text("# hello")
    manifest = store.commit(_manifest(), table, rejects=rejects, files_from=files)
    assert manifest.counts == {"rows": 2, "rejects": 1}
    assert store.read_table("s").to_pydict() == table.to_pydict()
    assert store.read_rejects("s").column("location").to_pylist() == ["line 3"]
    assert store.manifest("s").fingerprint == manifest.fingerprint
    assert (store.files_dir("s") / "report.md").read_text() == "# hello"  # local path, or a cached download


def test_recommit_switches_version_and_removes_the_old_one(store):
    first = store.commit(_manifest(), pa.table({"id": ["a"]}))
    second = store.commit(_manifest(config_hash="c2"), pa.table({"id": ["b", "c"]}))
    assert store.read_table("s").column("id").to_pylist() == ["b", "c"]
    assert first.version != second.version
    assert [d.name for d in store.stage_dir("s").list_dirs()] == [second.version]
    assert [f.name for f in store.stage_dir("s").list_files()] == [MANIFEST]


def test_a_crash_before_the_manifest_keeps_the_old_artifact(store, monkeypatch):
    store.commit(_manifest(), pa.table({"id": ["a"]}))
    real_write = Location.write_text

    def crash_on_manifest(self: Location, text: str) -> None:
        if self.name == MANIFEST:
            raise RuntimeError("killed while publishing")
        real_write(self, text)

    monkeypatch.setattr(Location, "write_text", crash_on_manifest)
    with pytest.raises(RuntimeError, match="killed"):
        store.commit(_manifest(config_hash="c2"), pa.table({"id": ["b"]}))
    monkeypatch.undo()
    assert store.manifest("s").config_hash == "c1"
    assert store.read_table("s").column("id").to_pylist() == ["a"]
    # The next successful commit sweeps the orphaned data folder away.
    latest = store.commit(_manifest(config_hash="c3"), pa.table({"id": ["c"]}))
    assert [d.name for d in store.stage_dir("s").list_dirs()] == [latest.version]


def test_parts_written_elsewhere_are_moved_in(store):
    work = store.work("s") / "parts"
    parts = [work / "shard-0.parquet", work / "shard-1.parquet"]
    parts[0].write_parquet(pa.table({"id": ["a", "b"]}))
    parts[1].write_parquet(pa.table({"id": ["c"]}))
    manifest = store.commit(_manifest(), None, parts=parts)
    assert manifest.counts["rows"] == 3 and manifest.files == ["part-00000.parquet", "part-00001.parquet"]
    assert store.read_table("s").column("id").to_pylist() == ["a", "b", "c"]
    assert not parts[0].exists()


def test_fingerprint_tracks_identity_and_each_publication(tmp_path):
    a, b = _manifest(), _manifest()
    assert a.fingerprint == b.fingerprint
    b.counts["rows"] = 3
    assert a.fingerprint != b.fingerprint
    # Re-running a stage publishes a new version: downstream stages become stale even if counts match.
    store = ArtifactStore(tmp_path)
    first = store.commit(_manifest(), pa.table({"id": ["a"]})).fingerprint
    assert store.commit(_manifest(), pa.table({"id": ["z"]})).fingerprint != first


def test_missing_stage_has_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="stage 'nope'"):
        ArtifactStore(tmp_path).read_table("nope")


def test_a_manifest_from_another_version_still_loads():
    text = _manifest().to_json().replace('"stage": "s"', '"stage": "s", "field_of_a_newer_version": true')
    assert Manifest.from_json(text).stage == "s"
