"""spark-submit entry file: `spark-submit --py-files spark_job.zip spark_job/entrypoint.py fit ...`.

The package itself arrives through --py-files; this file only hands over to its CLI.
"""

import sys

from spark_job.driver.cli import main

if __name__ == "__main__":
    sys.exit(main())
