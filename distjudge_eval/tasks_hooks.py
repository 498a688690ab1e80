"""The few callables a task folder's ``utils.py`` hands to lm-eval, built per benchmark.

Keeping them here means a task's ``utils.py`` is two lines and the YAML stays declarative.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from distjudge_eval.data.registry import BENCHMARKS, load_task_dataset


def make_hooks(bench: str) -> tuple[Callable[..., Any], Callable[[dict], list[str]]]:
    """(custom_dataset, doc_to_choice) for a benchmark; choices come from its label set."""
    labels = list(BENCHMARKS[bench].label_set.labels)

    def load_dataset(**kwargs: Any):
        return load_task_dataset(bench, **kwargs)

    def doc_to_choice(doc: dict) -> list[str]:
        return labels

    return load_dataset, doc_to_choice


def make_distribution_scorer(bench: str) -> Callable[[dict, list], dict]:
    """process_results for a task whose judge writes a distribution over the bench's labels."""
    from distjudge_eval.verbalized import reply_text, score

    label_set = BENCHMARKS[bench].label_set

    def process_results(doc: dict, results: list) -> dict:
        return score(doc, reply_text(results), label_set)

    return process_results
