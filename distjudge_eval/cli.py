"""``distjudge``: a thin layer over the lm-eval CLI plus data commands.

``distjudge eval`` accepts every lm-eval flag. It adds our task folder to ``--include_path``,
imports our model backends so lm-eval can find them, fills in the embedded default model when
none is named, and prints a compact distribution table after lm-eval's own.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from distjudge_eval.paths import tasks_dir
from distjudge_eval.settings import DATA_DIR_ENV, DEFAULT_DATA_DIR, STRICT_ENV

EMBEDDED_BACKENDS = ("hf", "hf-judge")
SUMMARY_METRICS = ("kl", "acc", "js", "brier", "ece", "entropy_gap")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print(USAGE)
        return 0
    command, rest = argv[0], argv[1:]
    if command == "eval":
        return run_eval(rest)
    if command == "data":
        from distjudge_eval.data.cli import main as data_main

        return data_main(rest)
    if command == "compare":
        from distjudge_eval.compare import main as compare_main

        return compare_main(rest)
    if command == "train":
        from trainer.cli import main as train_main

        return train_main(rest)
    if command in ("sft", "grpo"):
        from importlib import import_module

        return import_module(f"trainer.{command}").main(rest)
    if command == "sweep":
        from distjudge_eval.sweep import main as sweep_main

        return sweep_main(rest)
    if command == "bench":
        from distjudge_eval.bench import main as bench_main

        return bench_main(rest)
    print(f"distjudge: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
    return 2


USAGE = """usage: distjudge COMMAND [options]

commands:
  eval   run lm-eval on distjudge tasks (every lm-eval flag works; extra flags:
         --data_dir DIR, --strict); with no --model, scores the embedded SmolLM2-135M-Instruct
  data   fetch | info: download the original data files, or summarise what the loaders read
  compare  tables (bootstrap CIs, paired tests) and plots from lm-eval output folders
  train  fine-tune a judge toward human label distributions (see `distjudge train --help`)
  sft    fine-tune a verbalized pairwise judge on human probabilities (TRL SFTTrainer)
  grpo   RL for a verbalized pairwise judge from one vote per prompt (TRL GRPOTrainer)
  sweep  train + evaluate the alpha x epsilon grid (resumable), with tables and a KL-over-alpha plot
  bench  readout | projection | adversary: side-by-side timings printed as ratios
"""


def _pop_flag(args: list[str], name: str, takes_value: bool) -> str | bool | None:
    """Remove ``--name [value]`` / ``--name=value`` from args and return its value."""
    for i, arg in enumerate(args):
        if arg == name:
            del args[i]
            return args.pop(i) if takes_value else True
        if takes_value and arg.startswith(name + "="):
            del args[i]
            return arg.split("=", 1)[1]
    return None


def _has_flag(args: list[str], name: str) -> bool:
    return any(a == name or a.startswith(name + "=") for a in args)


def build_lm_eval_argv(args: Sequence[str]) -> list[str]:
    """lm-eval arguments with distjudge's defaults filled in where the user gave none."""
    args = list(args)
    data_dir = _pop_flag(args, "--data_dir", True)
    if data_dir:
        os.environ[DATA_DIR_ENV] = str(Path(str(data_dir)).expanduser().resolve())
    if _pop_flag(args, "--strict", False):
        os.environ[STRICT_ENV] = "1"

    _move_api_key_to_env(args)
    include = _pop_flag(args, "--include_path", True)
    args += ["--include_path", ",".join(p for p in (str(tasks_dir()), include) if p)]
    if not _has_flag(args, "--model"):
        args += ["--model", "hf"]
    model = args[args.index("--model") + 1] if "--model" in args else ""
    if model in EMBEDDED_BACKENDS and not _has_flag(args, "--model_args"):
        from distjudge_eval.embedded import embedded_model_args

        args += ["--model_args", embedded_model_args()]
    if not _has_flag(args, "--tasks"):
        args += ["--tasks", "distjudge_snli"]
    if not _has_flag(args, "--device"):
        import torch

        args += ["--device", "cuda" if torch.cuda.is_available() else "cpu"]
    if not _has_flag(args, "--output_path"):
        args += ["--output_path", "results/runs"]
    if not _has_flag(args, "--log_samples") and not _has_flag(args, "--predict_only"):
        args += ["--log_samples"]
    return ["run", *args] if not args or args[0] not in {"run", "ls", "validate"} else args


def _move_api_key_to_env(args: list[str]) -> None:
    """lm-eval writes --model_args into its results: an api_key there would leak, so it goes to
    $OPENAI_API_KEY instead (read by openai-judge)."""
    if "--model_args" not in args:
        return
    i = args.index("--model_args") + 1
    kept = []
    for part in args[i].split(","):
        if part.strip().startswith("api_key="):
            os.environ["OPENAI_API_KEY"] = part.split("=", 1)[1]
        else:
            kept.append(part)
    args[i] = ",".join(kept)


def run_eval(args: Sequence[str]) -> int:
    import distjudge_eval.models  # noqa: F401  (registers our lm-eval backends)

    lm_args = build_lm_eval_argv(args)
    from lm_eval.__main__ import cli_evaluate

    saved = sys.argv
    sys.argv = ["lm-eval", *lm_args]
    try:
        cli_evaluate()
    finally:
        sys.argv = saved
    if lm_args[0] == "run":
        out = Path(lm_args[lm_args.index("--output_path") + 1])
        latest = newest_results_file(out)
        if latest is not None:
            print(f"\ndistjudge summary ({latest}):\n{summary_table(latest)}")
            from distjudge_eval.position_bias import summary_lines

            for line in summary_lines(latest):
                print(f"position bias: {line}")
    return 0


def newest_results_file(output_path: Path) -> Path | None:
    candidates = [output_path] if output_path.suffix == ".json" else []
    candidates += list(output_path.glob("**/results_*.json")) if output_path.is_dir() else []
    files = [c for c in candidates if c.is_file()]
    return max(files, key=lambda p: p.stat().st_mtime) if files else None


def summary_table(results_file: Path) -> str:
    """Markdown table: one row per task, the distribution metrics side by side."""
    data = json.loads(results_file.read_text())
    rows = ["| task | n | " + " | ".join(SUMMARY_METRICS) + " |"]
    rows.append("|---|---:|" + "---:|" * len(SUMMARY_METRICS))
    for task, metrics in sorted(data.get("results", {}).items()):
        if "kl,none" not in metrics:
            continue
        n = data.get("n-samples", {}).get(task, {}).get("effective", "group")
        vals = [metrics.get(f"{m},none") for m in SUMMARY_METRICS]
        cells = [f"{v:.4f}" if isinstance(v, (int, float)) else "" for v in vals]
        rows.append(f"| {task.strip(' -')} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


if __name__ == "__main__":
    raise SystemExit(main())
