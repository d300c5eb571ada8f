"""Errors the CLI turns into a message and exit status 2 (bad input or configuration, nothing written)."""


class JobInputError(Exception):
    """The user's input, weights, model or output location cannot be used as given."""


class JobFailedError(Exception):
    """The run could not produce a result (e.g. not one image could be decoded); exit status 1."""
