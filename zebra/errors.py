"""One error type for every bad input the user can fix: scripts print its one-line message."""


class ZebraError(ValueError):
    """Bad input (file, row, field or setting named in the message); no traceback needed."""
