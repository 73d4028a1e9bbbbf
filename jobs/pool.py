"""Run the `pool` stage alone (its inputs must be published already).

ray job submit --working-dir . -- python jobs/pool.py --config CONFIG [--force]
"""

import sys

from compeffdist.jobentry import run_job

if __name__ == "__main__":
    sys.exit(run_job("pool", __doc__))
