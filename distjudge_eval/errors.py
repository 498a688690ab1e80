"""The one exception type for mistakes a user can fix (a bad flag, a missing file or extra).

Every CLI catches it and prints its message as one line (no traceback) with exit status 2, so
errors raised deep in a loader still reach the user as a sentence that says what to do.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix; its message says how, in one line."""


def missing_extra(module: str, extra: str, purpose: str) -> UserError:
    """The error for an optional dependency that is not installed."""
    return UserError(
        f"{purpose} needs the `{module}` package: pip install '.[{extra}]' in the distjudge"
        f" checkout (or pip install {module})"
    )
