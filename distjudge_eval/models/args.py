"""Checking ``--model_args`` names, so a typo is an error instead of a silently ignored setting.

lm-eval hands every ``--model_args`` key to the backend's constructor as a keyword argument and
adds a few settings of its own (``batch_size``, ``max_batch_size``, ``device`` and, with
``--trust_remote_code``, ``trust_remote_code``). A backend that takes ``**kwargs`` swallows a
misspelt key; these helpers turn it into one line naming the valid keys.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from urllib.parse import urlsplit

from distjudge_eval.errors import UserError

OPENAI_BASE_URL = "https://api.openai.com/v1"

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


def openai_base_url(base_url: str | None) -> str:
    """``base_url=``, else ``$OPENAI_BASE_URL``, else OpenAI's own."""
    return (base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_BASE_URL).rstrip("/")


def check_openai_key(base_url: str, api_key: str | None) -> None:
    """OpenAI itself refuses every request without a key: say so before any request (and
    before lm-eval builds the tasks), not after six failed attempts. A server at another
    address (a local OpenAI-compatible one) may need none."""
    if not api_key and urlsplit(base_url).hostname == "api.openai.com":
        raise UserError(
            "openai-judge: no API key for OpenAI: export OPENAI_API_KEY=... (or api_key= in "
            "--model_args); for a local OpenAI-compatible server pass base_url=..."
        )
