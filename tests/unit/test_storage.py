"""Locations: the same file operations on a local folder and on S3 (a real S3 endpoint, moto's server)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from compeffdist.storage import Location, is_uri

pytestmark = pytest.mark.unit


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path) -> Location:
    if request.param == "local":
        return Location.of(tmp_path / "store")
    return Location.of(request.getfixturevalue("s3_root")).join(request.node.originalname)


def test_text_parquet_listing_and_delete(root, tmp_path):
    assert not root.exists() and root.list_files() == []
    root.join("a", "manifest.json").write_text('{"x": 1}')
    root.join("a", "manifest.json").write_text('{"x": 2}')  # replaced, not appended
    assert root.join("a/manifest.json").read_text() == '{"x": 2}'
    table = pa.table({"id": ["r1", "r2"], "v": [1, 2]})
    root.join("a", "v1", "part-00000.parquet").write_parquet(table)
    part = root.join("a", "v1", "part-00000.parquet")
    assert part.is_file() and part.parquet_rows() == 2
    assert part.read_parquet(columns=["id"]).column("id").to_pylist() == ["r1", "r2"]
    assert [p.name for p in root.join("a").list_files()] == ["manifest.json"]
    assert [p.name for p in root.join("a").list_files(".parquet", recursive=True)] == ["part-00000.parquet"]
    assert [d.name for d in root.join("a").list_dirs()] == ["v1"]
    root.join("a", "v1").delete()
    assert not part.exists() and root.join("a/manifest.json").exists()
    root.join("nothing-here").delete()  # missing is fine


def test_upload_and_download_a_folder(root, tmp_path):
    source = tmp_path / "model"
    (source / "sub").mkdir(parents=True)
    (source / "config.json").write_text("{}")
    (source / "sub" / "weights.bin").write_bytes(b"\x00\x01")
    flat = tmp_path / "flat"  # no sub-folder: the destination folder itself must be created
    flat.mkdir()
    (flat / "only.txt").write_text("x")
    root.join("flat").upload(flat)
    assert (root.join("flat").download(tmp_path / "flat-copy") / "only.txt").read_text() == "x"
    target = root.join("files", "model")
    target.upload(source)
    assert target.join("config.json").is_file() and target.join("sub", "weights.bin").is_file()
    local = target.download(tmp_path / "copy")
    assert (local / "sub" / "weights.bin").read_bytes() == b"\x00\x01"


def test_uris_keep_their_options_when_joined():
    uri = Location.of("s3://bucket/runs?endpoint_override=host:9000&scheme=http")
    child = uri.join("pool", "manifest.json")
    assert child.uri == "s3://bucket/runs/pool/manifest.json?endpoint_override=host:9000&scheme=http"
    assert is_uri(child.uri) and not is_uri("/tmp/runs") and not is_uri("runs/local")
    assert Location.of("relative/dir").is_local and Location.of("relative/dir").uri.startswith("/")
    with pytest.raises(ValueError, match="not a local folder"):
        _ = uri.local_path
    assert Location.of("file:///tmp/runs/x") == Location("/tmp/runs/x")  # file:// is just a local folder


def test_joined_locations_share_the_parent_filesystem(s3_root):
    root = Location.of(s3_root)
    child = root.join("a", "b.parquet")
    assert child.fs is root.fs and child.path == root.path + "/a/b.parquet"
    assert Location(child.uri).path == child.path  # the same place when resolved afresh (as an actor does)


def test_ray_storage_arguments(tmp_path, s3_root):
    assert Location.of(tmp_path).ray_storage() == {"storage_path": str(tmp_path)}
    remote = Location.of(s3_root).join("train").ray_storage()
    assert remote["storage_path"] == "compeffdist-test/runs/train" and remote["storage_filesystem"] is not None
