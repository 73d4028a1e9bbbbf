"""Run the `responses` stage alone (its inputs must be published already).

ray job submit --working-dir . -- python jobs/responses.py --config CONFIG [--force]
"""

import sys

from compeffdist.jobentry import run_job

if __name__ == "__main__":
    sys.exit(run_job("responses", __doc__))
