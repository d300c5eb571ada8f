"""Fruits! Spark job: MobileNetV2 featurization of fruit photos, standardization and PCA.

Runs the same way in Spark local mode and as an EMR step (`spark-submit ... spark_job/entrypoint.py`).
"""

__version__ = "0.1.0"
