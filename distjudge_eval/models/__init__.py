"""lm-eval model backends; importing this package registers them with lm-eval.

lm-eval 0.4.13 has no plugin entry points, so ``distjudge eval`` imports this first; with stock
``lm_eval``, import it yourself (e.g. ``python -c "import distjudge_eval.models; ..."``).
"""

from distjudge_eval.models.hf_judge import HFJudgeLM
from distjudge_eval.models.openai_judge import OpenAIJudgeLM

__all__ = ["HFJudgeLM", "OpenAIJudgeLM"]
