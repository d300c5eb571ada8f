"""CDK app of the Fruits! pipeline: the FruitsData and FruitsPipeline stacks (eu-west-3 by default).

The stacks are built by stacks.fruits_stacks.build_stacks; the names they share with the job and ops are in
spark_job.contract.names.
"""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
