"""User-facing errors: a bad config value, a missing or corrupt file, weights that cannot be had.

Raised with one sentence that names the problem and the fix; the entry point prints that line
instead of a stack trace (a run that fails for any *other* reason is a bug and keeps its traceback).
"""

from contextlib import contextmanager


class UserError(Exception):
    """Something the user can fix; the message says how."""


class ConfigError(UserError):
    """A composed config value is invalid."""


@contextmanager
def unwrapped_user_errors():
    """Re-raise the UserError behind any exception raised inside. Hydra's ``instantiate`` wraps whatever
    a constructor raises (e.g. ResNet18's "weights unavailable") in its own exception, which would turn a
    one-line fix into a stack trace."""
    try:
        yield
    except Exception as err:
        cause = err
        while cause is not None and not isinstance(cause, UserError):
            cause = cause.__cause__
        if cause is None:
            raise
        raise cause from None
