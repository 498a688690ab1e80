"""A run of only our tasks does not make lm-eval index its ~14,700 own tasks (about 20 s)."""

from __future__ import annotations

import pytest

from distjudge_eval.lm_eval_index import only_our_tasks, without_lm_eval_tasks
from distjudge_eval.paths import tasks_dir


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        (["distjudge_snli"], True),
        (["distjudge_snli", "distjudge_mtbench"], True),
        (["distjudge_snli", "hellaswag"], False),  # lm-eval's own task: its index is needed
        (["distjudge_*"], False),  # a pattern could match lm-eval's tasks too
        (["my_task.yaml"], False),
        ([], False),
    ],
)
def test_only_plain_names_that_were_built_from_our_folders(
    requested: list[str], expected: bool
) -> None:
    built = ["distjudge_snli", "distjudge_mtbench", "distjudge_snli_verbalized"]
    assert only_our_tasks(requested, built) is expected


def test_lm_eval_run_builds_an_index_of_the_include_paths_only() -> None:
    """lm-eval's own run path (EvaluatorConfig.process_tasks) under the switch: our tasks are
    found, lm-eval's are not indexed; without it, they are; the switch is undone afterwards."""
    import lm_eval.tasks
    from lm_eval.config.evaluate_config import EvaluatorConfig

    original = lm_eval.tasks.TaskManager
    config = EvaluatorConfig(tasks="distjudge_snli", include_path=[str(tasks_dir())])
    with without_lm_eval_tasks():
        manager = config.process_tasks({})
    assert "distjudge_snli" in manager.all_tasks and "hellaswag" not in manager.all_tasks
    assert lm_eval.tasks.TaskManager is original
