"""Run the `templates` stage alone (its inputs must be published already).

ray job submit --working-dir . -- python jobs/templates.py --config CONFIG [--force]
"""

import sys

from compeffdist.jobentry import run_job

if __name__ == "__main__":
    sys.exit(run_job("templates", __doc__))
