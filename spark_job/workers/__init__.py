"""What runs in Spark's Python workers: decoding, the inference engines and the featurize map function.

Never imports the driver's modules (import-linter), so a worker that unpickles the map function imports
only this package, the contract and its libraries.
"""
