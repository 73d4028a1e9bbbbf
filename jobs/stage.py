"""`ray job submit --working-dir . -- python jobs/stage.py --stage STAGE --config CONFIG [--force] [--set KEY=VALUE]`

Runs one stage alone; its inputs must already be published under run.output_dir (shared storage on
a cluster), so stages can be submitted one by one. Inside a Ray job, Ray joins the job's cluster.
"""

import sys

from compeffdist.jobentry import run_job

if __name__ == "__main__":
    sys.exit(run_job(__doc__, single_stage=True))
