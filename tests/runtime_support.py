"""The real wheelhouse for this machine's platform (the cluster's: Linux x86_64, cp311), built once.

`make test` builds it before pytest (`make wheelhouse`); a bare `pytest` builds it here when missing or
stale, the same way (pip download of the locked wheels, hashes checked; pip's cache makes it quick).
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

from stacks.runtime_deps import PLATFORMS, LockError, build_wheelhouse, verify_wheelhouse

LOCAL_PLATFORM = PLATFORMS[platform.machine()]


@functools.cache
def ensure_wheelhouse(arch: str = LOCAL_PLATFORM.arch) -> Path:
    """The wheelhouse of `arch` (default: this machine's); aarch64 for the Graviton synth tests."""
    target = PLATFORMS[arch]
    folder = target.wheelhouse_dir()
    try:
        verify_wheelhouse(target, folder)
    except LockError:
        build_wheelhouse(target, folder)
        verify_wheelhouse(target, folder)
    return folder
