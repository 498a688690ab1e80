"""distjudge: score LLM judges by the label distribution they put on human-disputed items.

Importing this package stays light (no torch); model backends register with lm-eval when
``distjudge_eval.models`` is imported (the ``distjudge`` CLI does that first).
"""

__version__ = "0.1.0"
