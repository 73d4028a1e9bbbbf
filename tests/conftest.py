"""Shared fixtures: the SentiBench data root, a tiny model built from config, a local Ray."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

# Every Ray these tests start or join runs without token auth: local-only clusters, and Ray reads the
# mode once per process, so one test switching it would break every later ray.init in the session.
os.environ["RAY_AUTH_MODE"] = "disabled"

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA_ROOT = REPO.parent / "shared" / "data" / "sentibench"


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = Path(os.environ.get("COMPEFFDIST_DATA_ROOT", DEFAULT_DATA_ROOT))
    if not (root / "sc" / "imdb" / "train.json").is_file():
        pytest.skip(f"SentiBench not found at {root}: set COMPEFFDIST_DATA_ROOT or run `compeffdist data download`")
    return root


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    """A random-init 2-layer Llama with a BPE tokenizer trained on SentiBench texts (no download)."""
    from compeffdist.models.tiny import build_tiny_llama

    texts = [r["sentence"] for r in json.loads((data_root / "sc/yelp2/train.json").read_text("utf-8-sig"))[:400]]
    texts += ['Input: Output: analysis sentiment positive negative neutral JSON [] {} " :']
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"), texts)


@pytest.fixture(scope="module")
def ray_local():
    """A real local Ray with 2 CPUs for the module's tests."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def s3_root():
    """An S3 bucket URI on a real S3 HTTP endpoint (moto's server) in this process; Ray workers reach it too.

    Cloud object storage cannot run here; this is the same protocol pyarrow speaks to S3 and MinIO.
    """
    server_module = pytest.importorskip("moto.server", reason="moto (dev extra) is not installed")
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one log line per HTTP request otherwise
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    # Credentials come from the environment, as on a cluster; Ray workers started later inherit them.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    import pyarrow.fs as pafs

    pafs.S3FileSystem(
        endpoint_override=f"{host}:{port}", scheme="http", region="us-east-1", allow_bucket_creation=True
    ).create_dir("compeffdist-test")
    yield f"s3://compeffdist-test/runs?scheme=http&endpoint_override={host}:{port}&region=us-east-1"
    server.stop()
