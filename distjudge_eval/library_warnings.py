"""Warnings our libraries raise that a user can do nothing about, silenced where we call them.

peft (0.21 and before) reads ``model.is_gradient_checkpointing`` whenever it wraps a model or
loads an adapter, and transformers 5 deprecates that name: every ``distjudge train`` and every
eval of a LoRA adapter printed a FutureWarning pointing into transformers' source. The filter is
scoped to those calls and to that one message, so any other warning still shows.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

PEFT_READS_DEPRECATED_NAME = r"`is_gradient_checkpointing` is deprecated"


@contextmanager
def quiet_peft_deprecation() -> Iterator[None]:
    """Within: transformers' FutureWarning about the name peft reads is not shown."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=PEFT_READS_DEPRECATED_NAME, category=FutureWarning
        )
        yield
