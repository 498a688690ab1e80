"""The peft deprecation filter hides that one FutureWarning, only inside its block."""

from __future__ import annotations

import warnings

from distjudge_eval.library_warnings import quiet_peft_deprecation

PEFT_MESSAGE = (
    "`is_gradient_checkpointing` is deprecated and will be removed in v6. Use "
    "`is_activation_checkpointing` instead."
)


def test_only_the_peft_deprecation_is_hidden_and_only_inside() -> None:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with quiet_peft_deprecation():
            warnings.warn(PEFT_MESSAGE, FutureWarning, stacklevel=1)
            warnings.warn("some other deprecation", FutureWarning, stacklevel=1)
            warnings.warn(PEFT_MESSAGE, UserWarning, stacklevel=1)  # another category shows
        warnings.warn(PEFT_MESSAGE, FutureWarning, stacklevel=1)  # outside: shows
    shown = [(w.category, str(w.message)) for w in seen]
    assert shown == [
        (FutureWarning, "some other deprecation"),
        (UserWarning, PEFT_MESSAGE),
        (FutureWarning, PEFT_MESSAGE),
    ]
