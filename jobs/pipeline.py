"""`ray job submit --working-dir . -- python jobs/pipeline.py --config CONFIG [--until S] [--only S..] [--force S..]`

Runs every stage in order, skipping up-to-date ones. Inside a Ray job, Ray joins the job's cluster.
"""

import sys

from compeffdist.jobentry import run_job

if __name__ == "__main__":
    sys.exit(run_job(__doc__, single_stage=False))
