"""lm-eval hooks for distjudge_snli*: all logic lives in distjudge_eval."""

from distjudge_eval.tasks_hooks import make_distribution_scorer, make_hooks

load_dataset, doc_to_choice = make_hooks("snli")
process_results_verbalized = make_distribution_scorer("snli")
