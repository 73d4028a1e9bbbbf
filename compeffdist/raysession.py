"""Start or join Ray once per process: a local single-node Ray, or a cluster under `ray job submit`."""

from __future__ import annotations

import logging
import os

from compeffdist.config import RayConfig

# Ray Data says this once per dataset at WARNING level although the pipeline turned the bars off on purpose.
QUIET_MESSAGES = ("Progress bars disabled",)


class _DropKnownNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not any(text in record.getMessage() for text in QUIET_MESSAGES)


NOISE_FILTER = _DropKnownNoise()


def joins_cluster(config: RayConfig) -> bool:
    """Whether the run joins an existing cluster (`ray.address`, or RAY_ADDRESS under `ray job submit`)."""
    return bool(config.address or os.environ.get("RAY_ADDRESS"))


def ensure_ray(config: RayConfig) -> None:
    """Initialize Ray if it is not running yet; inside a Ray job this joins the job's cluster."""
    import ray

    if ray.is_initialized():
        return
    # Quiet per-task progress bars; the pipeline prints its own progress lines.
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    kwargs: dict[str, object] = {"include_dashboard": config.include_dashboard, "log_to_driver": config.log_to_driver}
    if joins_cluster(config):
        kwargs["address"] = config.address or os.environ["RAY_ADDRESS"]
    else:
        if config.num_cpus is not None:
            kwargs["num_cpus"] = config.num_cpus
        if config.num_gpus is not None:
            kwargs["num_gpus"] = config.num_gpus
    ray.init(**kwargs)
    import ray.data  # configures Ray Data's loggers on import: quiet them afterwards, or the import undoes it

    quiet_ray_logs(config.verbose)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False


def quiet_ray_logs(verbose: bool) -> None:
    """Unless `verbose`, keep Ray Data's INFO lines (plans, per-dataset timings) out of the console."""
    if verbose:
        return
    for name in ("ray.data", "ray.llm"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.WARNING)
        for target in (logger, *logger.handlers):
            if NOISE_FILTER not in target.filters:
                target.addFilter(NOISE_FILTER)
