"""User-facing errors.

A `UserError` is a mistake the user can fix (a bad catalog, a missing file, a broken tree). Entry
points print its message on one line and exit non-zero without a traceback; anything else is a bug
and keeps its traceback.
"""


class UserError(Exception):
    """An input problem the user can fix; the message says what, where, and what to do."""

    exit_code = 2
