"""The one exception type users see: a clear, one-line message."""


class IecastError(Exception):
    """A user-facing error whose message is a single line naming the file and the problem."""
