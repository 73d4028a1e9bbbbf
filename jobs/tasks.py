"""Run the `tasks` stage alone (its inputs must be published already).

ray job submit --working-dir . -- python jobs/tasks.py --config CONFIG [--force]
"""

import sys

from compeffdist.jobentry import run_job

if __name__ == "__main__":
    sys.exit(run_job("tasks", __doc__))
