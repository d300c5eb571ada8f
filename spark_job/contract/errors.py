"""The job's expected failures, each with its CLI exit status: JobInputError 2, JobFailedError 1."""


class JobInputError(Exception):
    """The user's input, weights, model or output location cannot be used as given: exit status 2, with a
    message, before anything is written."""


class JobFailedError(Exception):
    """The run could not produce a result (e.g. not one image could be decoded); exit status 1."""
