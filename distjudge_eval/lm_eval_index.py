"""Let lm-eval's ``run`` skip indexing its own tasks when a run uses none of them.

lm-eval 0.4.13 builds an index of every task YAML it ships (about 14,700 tasks, some 20 s on 2
CPU cores) on each run before it looks at the requested names. A distjudge run that names only
tasks from our folder or the user's (``--include_path``) never needs that index, so for such a
run the ``TaskManager`` lm-eval constructs is told ``include_defaults=False``. A run naming any
of lm-eval's own tasks, a shell pattern or a YAML path keeps lm-eval's full index.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

PATTERN_CHARS = set("*?[")


def only_our_tasks(requested: Sequence[str], built: Sequence[str]) -> bool:
    """Whether lm-eval can do without its own index: every requested name is a plain name (no
    pattern, no YAML path) among ``built``, the tasks already built from our folder and the
    user's alone (a user's group naming lm-eval's own tasks is not among them)."""
    plain = all(
        not (PATTERN_CHARS & set(n)) and not n.endswith((".yaml", ".yml")) for n in requested
    )
    return bool(requested) and plain and set(requested) <= set(built)


@contextlib.contextmanager
def without_lm_eval_tasks() -> Iterator[None]:
    """While active, a ``TaskManager`` that lm-eval builds indexes only the include paths."""
    import lm_eval.tasks as tasks_module

    original = tasks_module.TaskManager

    class OnlyIncludedTasks(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["include_defaults"] = False
            super().__init__(*args, **kwargs)

    tasks_module.TaskManager = OnlyIncludedTasks
    try:
        yield
    finally:
        tasks_module.TaskManager = original
