"""The app side: `predict`, the app's model on photos, with LiteRT, NumPy and Pillow only (no pyspark, no
TensorFlow, no driver module)."""
