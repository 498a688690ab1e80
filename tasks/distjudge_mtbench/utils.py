"""lm-eval hooks for distjudge_mtbench*: all logic lives in distjudge_eval."""

from distjudge_eval.tasks_hooks import make_hooks
from distjudge_eval.verbalized import process_results_binary as process_results_verbalized

load_dataset, doc_to_choice = make_hooks("mtbench")

__all__ = ["doc_to_choice", "load_dataset", "process_results_verbalized"]
