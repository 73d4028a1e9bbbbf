"""How the pipeline starts or joins Ray: what it passes to ray.init."""

from __future__ import annotations

import pytest

from compeffdist.config import RayConfig
from compeffdist.raysession import ensure_ray

pytestmark = pytest.mark.unit


@pytest.fixture
def init_calls(monkeypatch):
    import ray

    calls: list[dict] = []
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: calls.append(kwargs))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    return calls


def test_local_ray_gets_cpus_and_log_streaming_from_config(init_calls):
    ensure_ray(RayConfig(num_cpus=2, log_to_driver=False))
    assert init_calls == [{"include_dashboard": False, "log_to_driver": False, "num_cpus": 2}]


def test_a_cluster_address_is_joined_without_local_resources(init_calls, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")  # what `ray job submit` sets for the driver
    ensure_ray(RayConfig(num_cpus=2))
    assert init_calls == [{"include_dashboard": False, "log_to_driver": True, "address": "10.0.0.1:6379"}]


def test_ray_data_info_lines_are_off_unless_verbose(init_calls):
    import logging

    logger = logging.getLogger("ray.data")
    before = logger.level
    try:
        logger.setLevel(logging.INFO)
        ensure_ray(RayConfig(verbose=True))
        assert logger.level == logging.INFO
        ensure_ray(RayConfig())
        assert logger.level == logging.WARNING
        noise = logging.LogRecord("ray.data", logging.WARNING, "x", 1, "Progress bars disabled. To enable...", (), None)
        real = logging.LogRecord("ray.data", logging.WARNING, "x", 1, "Operator is backpressured", (), None)
        assert not logger.filter(noise) and logger.filter(real)
    finally:
        logger.setLevel(before)
