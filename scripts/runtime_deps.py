#!/usr/bin/env python3
"""`make lock`, `make wheelhouse`: the command line of stacks/runtime_deps.py (see its docstring).

A script rather than `python -m stacks.runtime_deps`: the stacks package imports that module itself
(config, CDK app), and runpy would then run a second copy of it.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stacks.runtime_deps import main  # after the path is set

sys.exit(main())
