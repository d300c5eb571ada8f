"""What the job shares with `stacks/`, `ops/` and the app: names, typed records and the job's errors.

Standard library only (import-linter keeps pyspark, TensorFlow and the driver out).
"""
