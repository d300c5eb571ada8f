"""MobileNetV2 on LiteRT (XNNPACK, float32) in a Python worker, without TensorFlow; the model is converted
on the driver (spark_job.driver.litert_convert). One `invoke()` per image on an input of batch 1: faster
than batch-32 invokes at a quarter of the memory (docs/decisions.md, "invoke shape").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from spark_job.contract.names import FEATURE_DIM
from spark_job.workers.decode import decode_resized, mobilenet_scale


class LiteRTRunner:
    """One LiteRT interpreter (XNNPACK, `threads` threads) over the converted model, in one process.

    The input is sized to batch 1 once, here: resizing a LiteRT input re-plans the graph (XNNPACK re-packs
    its weights), so it never happens per call. Not thread-safe: one runner per Python worker.
    """

    def __init__(self, model_path: str, image_size: int, threads: int) -> None:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.image_size = image_size
        self.threads = threads
        # BUILTIN applies LiteRT's default delegate, XNNPACK, to the whole graph (as AUTO does today).
        self._interpreter = Interpreter(
            model_path=model_path, num_threads=threads, experimental_op_resolver_type=OpResolverType.BUILTIN
        )
        (inp,) = self._interpreter.get_input_details()
        (out,) = self._interpreter.get_output_details()
        self._input, self._output = inp["index"], out["index"]
        if list(inp["shape"]) != [1, image_size, image_size, 3]:
            self._interpreter.resize_tensor_input(self._input, [1, image_size, image_size, 3], strict=True)
        self._interpreter.allocate_tensors()

    def featurize(self, contents: Sequence[bytes | None]) -> tuple[np.ndarray, list[Exception | None]]:
        """engines.Engine.featurize: a bad image never fails the batch."""
        n = len(contents)
        features = np.zeros((n, FEATURE_DIM), dtype=np.float32)
        errors: list[Exception | None] = [None] * n
        for i, data in enumerate(contents):
            try:
                if not data:
                    raise ValueError("empty image data")
                pixels = mobilenet_scale(np.asarray(decode_resized(data, self.image_size)))
            except Exception as exc:  # any decoder failure rejects this image only, never the batch
                errors[i] = exc
                continue
            self._interpreter.set_tensor(self._input, pixels[np.newaxis])
            self._interpreter.invoke()
            features[i] = self._interpreter.get_tensor(self._output)[0]
        return features, errors


# Per Python worker process: runners built once and kept across the tasks the (reused) worker runs.
_RUNNERS: dict[tuple[str, int, int], LiteRTRunner] = {}


def worker_runner(model_path: str, image_size: int, threads: int) -> LiteRTRunner:
    """This process's runner for the model: built on first use, then kept."""
    key = (model_path, image_size, threads)
    runner = _RUNNERS.get(key)
    if runner is None:
        runner = _RUNNERS[key] = LiteRTRunner(model_path, image_size, threads)
    return runner
