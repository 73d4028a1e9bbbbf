"""How the records artifact is split into files for the teacher's actor pool."""

from __future__ import annotations

import pytest

from compeffdist.artifacts import ROWS_PER_PART
from compeffdist.config import EngineConfig
from compeffdist.labeling import BLOCKS_PER_ACTOR, rows_per_part

pytestmark = pytest.mark.unit


def test_records_files_give_every_actor_several_blocks_of_whole_batches():
    local = EngineConfig(resources={"batch_size": 8, "max_actors": 2})
    assert rows_per_part(96, local) == 8  # 12 files: 6 per actor
    cluster = EngineConfig(resources={"batch_size": 64, "max_actors": 32})
    assert rows_per_part(1_000_000, cluster) == -(-1_000_000 // (32 * BLOCKS_PER_ACTOR))  # 3907 rows, 256 files
    assert (
        rows_per_part(10, EngineConfig(resources={"batch_size": 16, "max_actors": 4})) == 16
    )  # never less than a batch
    assert rows_per_part(10**9, cluster) == ROWS_PER_PART  # and never huge files
