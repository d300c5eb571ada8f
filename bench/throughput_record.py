"""The measuring machine, as a measurement names it: `make record-rates` writes it into ops/data/rates.json
(the rates `make cost` reads), and the scale and growth benchmarks print it beside their numbers.

No benchmark writes a file of the repository: the committed rates change only by `make record-rates`.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path


def machine_description() -> str:
    """`<n> vCPUs <arch> <CPU model>`, the model from /proc/cpuinfo (empty where there is none)."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} vCPUs {platform.machine()} {model}".strip()
