"""SentiBench on disk: where each dataset lives, reading its splits, and fetching it from its public source."""

from __future__ import annotations

import io
import json
import shutil
import tempfile
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

from compeffdist.config import SENTIBENCH_DATASETS

# The benchmark's public home: the `datasets/` folder of the Sentiment-Distillation repository.
SOURCE_ZIP_URL = "https://codeload.github.com/HITSZ-HLT/Sentiment-Distillation/zip/refs/heads/main"
SOURCE_SUBDIR = "datasets"


class DatasetError(RuntimeError):
    """A SentiBench file is missing or malformed; the message names the file."""


def split_path(data_root: Path, dataset: str, split: str) -> Path:
    return Path(data_root) / dataset / f"{split}.json"


def read_split(data_root: Path, dataset: str, split: str) -> list[dict[str, Any]]:
    """Read one split (a JSON list, usually with a BOM); raise DatasetError naming the file on problems."""
    path = split_path(data_root, dataset, split)
    if not path.is_file():
        raise DatasetError(f"{path}: missing (is run.data_root pointing at SentiBench?)")
    try:
        records = json.loads(path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: unreadable JSON: {exc}") from exc
    if not isinstance(records, list):
        raise DatasetError(f"{path}: expected a JSON list, got {type(records).__name__}")
    return records


def download_sentibench(target: Path, archive: Path | None = None, url: str = SOURCE_ZIP_URL) -> list[str]:
    """Fetch SentiBench into `target` (from `archive` if given, else from the public repository).

    Returns the datasets found. Files are written to a temporary folder first and moved into place,
    so an interrupted download never leaves a half-filled data root.
    """
    if archive is not None:
        payload = Path(archive).read_bytes()
    else:
        with urllib.request.urlopen(url, timeout=120) as response:
            payload = response.read()
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        staging = Path(scratch) / "sentibench"
        with zipfile.ZipFile(io.BytesIO(payload)) as bundle:
            for member in bundle.infolist():
                parts = Path(member.filename).parts
                if SOURCE_SUBDIR not in parts or member.is_dir():
                    continue
                relative = Path(*parts[parts.index(SOURCE_SUBDIR) + 1 :])
                if ".." in relative.parts:
                    continue
                destination = staging / relative
                destination.parent.mkdir(parents=True, exist_ok=True)
                with bundle.open(member) as source, open(destination, "wb") as sink:
                    shutil.copyfileobj(source, sink)
        found = [d for d in SENTIBENCH_DATASETS if split_path(staging, d, "test").is_file()]
        missing = sorted(set(SENTIBENCH_DATASETS) - set(found))
        if missing:
            raise DatasetError(f"the archive lacks {missing} under {SOURCE_SUBDIR}/")
        if target.exists():
            shutil.rmtree(target)
        shutil.move(str(staging), target)
    return found
