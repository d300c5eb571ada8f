"""Reference: decode + resize + preprocess + batched inference in one Python process, no Spark.

Prints one JSON line: {"images": n, "seconds": s, "img_s": r}. The model is built and traced before the
clock starts (steady state); reading the files is inside the timing, as in the job.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from spark_job.contract.names import ALLOWED_IMAGE_SIZES, DEFAULT_IMAGE_SIZE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bare_tf")
    parser.add_argument("--dir", required=True, type=Path)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--image-size", type=int, default=DEFAULT_IMAGE_SIZE, choices=ALLOWED_IMAGE_SIZES)
    parser.add_argument("--cores", type=int, required=True)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.cores)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from spark_job.workers.decode import decode_image
    from spark_job.workers.network import inference_function, preprocess

    size = args.image_size
    infer = inference_function(args.weights, size)
    infer(np.zeros((2, size, size, 3), np.float32))  # trace once, outside the timing

    files = sorted(p for p in args.dir.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    start = time.perf_counter()
    done = 0
    for i in range(0, len(files), args.batch_size):
        chunk = files[i : i + args.batch_size]
        batch = np.stack([decode_image(p.read_bytes(), size) for p in chunk])
        out = infer(preprocess(batch)).numpy()
        done += len(out)
    seconds = time.perf_counter() - start
    sys.stdout.write(json.dumps({"images": done, "seconds": seconds, "img_s": done / seconds}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
