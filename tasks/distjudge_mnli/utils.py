"""lm-eval hooks for distjudge_mnli: all logic lives in distjudge_eval."""

from distjudge_eval.tasks_hooks import make_hooks

load_dataset, doc_to_choice = make_hooks("mnli")
