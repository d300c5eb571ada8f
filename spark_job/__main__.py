"""`python -m spark_job ...`: see spark_job.cli."""

import sys

from spark_job.cli import main

sys.exit(main())
