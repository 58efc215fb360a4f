"""The one exception type users see: a clear, one-line message about their input."""


class AnnotatorError(Exception):
    """A problem with the user's input or configuration, reported as one line without a traceback."""


class InputWarning(UserWarning):
    """Something in the user's input that is valid but probably not what they meant (the CLI prints it as one line)."""
