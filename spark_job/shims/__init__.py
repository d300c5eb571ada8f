"""Platform shims: the private pyspark APIs the driver still needs, in one place, gated and guard-tested."""
