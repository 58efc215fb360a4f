"""The one exception type users see: a clear, one-line message about their input."""


class AnnotatorError(Exception):
    """A problem with the user's input or configuration, reported as one line without a traceback."""
