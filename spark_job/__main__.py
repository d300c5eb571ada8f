"""`python -m spark_job ...`: see spark_job.driver.cli; `predict` (spark_job.app.predict) starts without
pyspark."""

import sys

if sys.argv[1:2] == ["predict"]:  # no JVM and no pyspark import for the app's model: it starts in < 1 s
    from spark_job.app.predict import main as predict_main

    sys.exit(predict_main(sys.argv[2:]))

from spark_job.driver.cli import main

sys.exit(main())
