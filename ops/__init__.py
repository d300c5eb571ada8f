"""Operator CLI for the Fruits! pipeline: upload data, start runs, follow them, list runs, fetch results.

Run it as ``python -m ops <command>`` (``python -m ops --help`` lists the commands).
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
