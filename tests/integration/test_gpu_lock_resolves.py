"""requirements/lock-gpu.txt resolves against the package index for the image's Python and platform, without
installing: a pin that disappeared, a dependency added to pyproject.toml without refreshing the lock, or two pins that
no longer fit together fail here instead of in `docker build` or on a GPU node.

Reads only wheel metadata (uv, HTTP range requests): about 5-10 s and a few MB, not the CUDA wheels' gigabytes.
Needs the package index, as `make install` does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


def test_gpu_lock_is_a_complete_consistent_resolution_of_pyproject():
    result = subprocess.run(
        ["bash", "requirements/compile-gpu-lock.sh", "--check"],
        cwd=REPO, env={**os.environ, "PYTHON": sys.executable},
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "a complete and consistent resolution for Python 3.12" in result.stdout
