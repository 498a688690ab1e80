"""Stock lm-eval's command line with distjudge's model backends registered.

lm-eval 0.4.13 has no plugin entry points, so ``lm_eval --model hf-judge`` does not know our
backends (they register when :mod:`distjudge_eval.models` is imported). This module is
``lm_eval`` itself after that import, for when stock lm-eval is wanted rather than
``distjudge eval`` (which adds defaults, checks and a summary), e.g. data-parallel::

    accelerate launch --num_processes 2 -m distjudge_eval.lm_eval_main \\
        --model hf-judge --model_args pretrained=<model> --include_path <tasks> --tasks ...
"""

from __future__ import annotations

import distjudge_eval.models  # noqa: F401  (registers hf-judge and openai-judge)


def main() -> None:
    from lm_eval.__main__ import cli_evaluate

    cli_evaluate()


if __name__ == "__main__":
    main()
