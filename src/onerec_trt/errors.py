"""One exception type for user mistakes; the CLI prints it as one line and exits non-zero.

Internal bugs are ordinary exceptions and keep their traceback.
"""


class UserError(Exception):
    """A problem the user can fix: bad input, a missing file, contradictory options."""

    exit_code = 2

    def __init__(self, message: str, note: str | None = None):
        self.note = note
        super().__init__(message if note is None else f"{message}\nNote: {note}")


def user_error(message: str, note: str | None = None) -> UserError:
    """Build the user error (``raise user_error(...)``) so call sites read as one line."""
    return UserError(message, note)
