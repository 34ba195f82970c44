"""User-facing errors: the CLI prints them as one line and exits non-zero, no traceback."""


class UserError(Exception):
    """Bad input or arguments; the message names the file/row/argument and what is wrong."""
