"""Checking ``--model_args`` names, so a typo is an error instead of a silently ignored setting.

lm-eval hands every ``--model_args`` key to the backend's constructor as a keyword argument and
adds a few settings of its own (``batch_size``, ``max_batch_size``, ``device`` and, with
``--trust_remote_code``, ``trust_remote_code``). A backend that takes ``**kwargs`` swallows a
misspelt key; these helpers turn it into one line naming the valid keys.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from distjudge_eval.errors import UserError

# Settings lm-eval passes to every backend whether or not the user wrote them.
HARNESS_ARGS = ("batch_size", "max_batch_size", "device", "trust_remote_code")


def unknown_args_error(backend: str, unknown: Iterable[str], valid: Iterable[str]) -> UserError:
    """One line: the unknown keys, the valid ones, and the closest match for a likely typo."""
    unknown = sorted(unknown)
    valid = list(dict.fromkeys(valid))
    guesses = [
        f"{name} -> {match[0]}"
        for name in unknown
        if (match := difflib.get_close_matches(name, valid, n=1, cutoff=0.75))
    ]
    hint = f"; did you mean {', '.join(guesses)}?" if guesses else ""
    return UserError(
        f"{backend}: unknown model_args {', '.join(unknown)} (valid: {', '.join(valid)}){hint}"
    )


def reject_unknown(backend: str, given: Iterable[str], valid: Iterable[str]) -> None:
    """Raise :func:`unknown_args_error` for keys outside ``valid`` and lm-eval's own settings."""
    valid = list(valid)
    unknown = [k for k in given if k not in valid and k not in HARNESS_ARGS]
    if unknown:
        raise unknown_args_error(backend, unknown, valid)
