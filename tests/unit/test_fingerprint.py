"""External inputs are fingerprinted by content and relative names, not by where they are mounted."""

from __future__ import annotations

import pytest

from compeffdist.pipeline import file_fingerprint

pytestmark = pytest.mark.unit


def _tree(root, yelp: str = "y"):
    for name, text in (("sc/imdb/train.json", "x"), ("sc/yelp2/train.json", yelp)):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return [root / "sc/imdb/train.json", root / "sc/yelp2/train.json"]


def test_same_data_elsewhere_has_the_same_fingerprint(tmp_path):
    laptop, cluster = _tree(tmp_path / "laptop"), _tree(tmp_path / "mnt" / "shared" / "sentibench")
    assert file_fingerprint(laptop) == file_fingerprint(cluster)
    assert file_fingerprint(laptop[:1]) == file_fingerprint(cluster[:1])


def test_content_or_names_change_the_fingerprint(tmp_path):
    base = file_fingerprint(_tree(tmp_path / "a"))
    assert file_fingerprint(_tree(tmp_path / "b", yelp="changed")) != base
    renamed = _tree(tmp_path / "c")
    (tmp_path / "c" / "sc" / "yelp2" / "train.json").rename(tmp_path / "c" / "sc" / "yelp2" / "test.json")
    assert file_fingerprint([renamed[0], tmp_path / "c" / "sc" / "yelp2" / "test.json"]) != base
