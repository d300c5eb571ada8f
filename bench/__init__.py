"""Benchmarks: the job's featurize stage against bare TensorFlow on the same images and cores."""
