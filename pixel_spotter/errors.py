"""User-facing errors: a bad config value, a missing or corrupt file, weights that cannot be had.

Raised with one sentence that names the problem and the fix; the entry point prints that line
instead of a stack trace (a run that fails for any *other* reason is a bug and keeps its traceback).
"""


class UserError(Exception):
    """Something the user can fix; the message says how."""


class ConfigError(UserError):
    """A composed config value is invalid."""
