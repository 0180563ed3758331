"""The one base class for errors the pipeline reports to its user as a plain message."""


class PipelineError(Exception):
    """An expected failure: the message names the thing and what the user can do.

    doit stages print it without a traceback; anything else is a bug and keeps its traceback.
    """
