"""Wall-clock seconds per stage of a run, as the manifest's `timings_s` records them."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass
class Timings:
    stages: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        log.info("stage %s: started", name)
        try:
            yield
        finally:
            self.stages[name] = round(time.perf_counter() - start, 3)
            log.info("stage %s: done in %.1f s", name, self.stages[name])
