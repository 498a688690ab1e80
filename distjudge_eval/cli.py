"""``distjudge``: a thin layer over the lm-eval CLI plus data, training and comparison commands.

``distjudge eval`` parses its flags with lm-eval's own ``run`` parser, so every lm-eval spelling
(``-M``, ``-a``, ``-t``, ``-o``, ``--model_args=...``, ``--config``) means what it means there.
It then fills in distjudge's defaults, moves an ``api_key`` out of what lm-eval records, checks
what a user can get wrong (task names, data dir, output folder, optional extras) before any model
loads, runs lm-eval's own ``run`` command, and prints a compact distribution table after it.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import logging
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from distjudge_eval.errors import UserError, missing_extra

DEFAULT_MODEL = "hf-judge"
EMBEDDED_BACKENDS = ("hf", "hf-judge")
DEFAULT_TASKS = ("distjudge_snli",)
DEFAULT_OUTPUT = "results/runs"
SECRET_KEYS = ("api_key",)
LM_EVAL_PASSTHROUGH = ("ls", "validate")
SUMMARY_METRICS = ("kl", "acc", "js", "brier", "ece", "entropy_gap")


def main(argv: Sequence[str] | None = None) -> int:
    """Every subcommand's user mistakes end here as one line on stderr and exit status 2."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return _dispatch(argv)
    except UserError as err:
        print(f"distjudge: {err}", file=sys.stderr)
        return 2


# Every other command is a module with ``main(argv) -> int``; the trainer's are the only place
# the evaluation core names the trainer (tests/project/test_layout.py checks it).
COMMANDS = {
    "data": "distjudge_eval.data.cli",
    "compare": "distjudge_eval.compare",
    "train": "distjudge_trainer.cli",
    "sft": "distjudge_trainer.sft",
    "grpo": "distjudge_trainer.grpo",
    "sweep": "distjudge_eval.sweep",
    "calibrate": "distjudge_eval.temperature",
    "baseline": "distjudge_eval.baselines",
}


def _dispatch(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help"}:
        print(USAGE)
        return 0
    command, rest = argv[0], argv[1:]
    if command == "eval":
        return run_eval(rest)
    if command in COMMANDS:  # imported on use: `distjudge data info` must not import torch
        from importlib import import_module

        return import_module(COMMANDS[command]).main(rest)
    if command == "bench":  # benchmarks need the dev extras and a checkout, so live beside us
        print(f"distjudge: {BENCH_MOVED}", file=sys.stderr)
        return 2
    print(f"distjudge: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
    return 2


USAGE = """usage: distjudge COMMAND [options]

commands:
  eval   run lm-eval on distjudge tasks (every lm-eval `run` flag works; extra flags:
         --data_dir DIR, --strict); with no --model, scores the embedded SmolLM2-135M-Instruct
         with hf-judge
  data   fetch | info: download the original data files, or summarise what the loaders read
  compare  tables (bootstrap CIs, paired tests) and plots from lm-eval output folders
  train  fine-tune a judge toward human label distributions (see `distjudge train --help`)
  sft    fine-tune a verbalized pairwise judge on human probabilities (TRL SFTTrainer)
  grpo   RL for a verbalized pairwise judge from one vote per prompt (TRL GRPOTrainer)
  sweep  train + evaluate the alpha x epsilon grid (resumable), with tables and a KL-over-alpha plot
  calibrate  fit a temperature on a train-split run's samples (apply: --metadata temperature)
  baseline   the prior judge (mean train p, reads nothing) of tasks, as a run for compare
"""
BENCH_MOVED = (
    "the benchmarks live beside the package: from a checkout, run "
    "`python benchmarks/bench.py readout|projection|adversary|api ...` (results/bench/README.md)"
)


class _UserErrorParser(argparse.ArgumentParser):
    """argparse that raises :class:`UserError` (one line) instead of printing usage and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UserError(f"eval: {message} (see `distjudge eval --help`)")


def lm_eval_parsers() -> dict[str, argparse.ArgumentParser]:
    """lm-eval's own subcommand parsers (run, ls, validate), raising :class:`UserError`."""
    from lm_eval._cli.ls import List
    from lm_eval._cli.run import Run
    from lm_eval._cli.validate import Validate

    subparsers = _UserErrorParser(prog="distjudge eval").add_subparsers(dest="command")
    for command in (Run, List, Validate):  # subparsers inherit the parser class
        command.create(subparsers)
    return dict(subparsers.choices)


def eval_parser() -> argparse.ArgumentParser:
    """lm-eval's own ``run`` parser, plus distjudge's two flags."""
    parser = lm_eval_parsers()["run"]
    parser.prog = "distjudge eval"
    parser.usage = "distjudge eval [lm-eval run flags] [--data_dir DIR] [--strict]"
    ours = parser.add_argument_group("distjudge")
    ours.add_argument(
        "--data_dir",
        type=str,
        default=None,
        metavar="DIR",
        help="folder with the original data files (default: $DISTJUDGE_DATA_DIR)",
    )
    ours.add_argument(
        "--strict", action="store_true", help="a malformed data row is an error, not a skip"
    )
    return parser


@dataclass
class EvalPlan:
    """What lm-eval's ``run`` command will execute, and what distjudge checks before it."""

    namespace: argparse.Namespace
    user_include: list[str]
    data_dir: Path | None = None
    api_key: str | None = field(default=None, repr=False)
    ours_only: bool = False  # every task is ours or the user's: lm-eval skips its own index


def plan_eval(args: Sequence[str]) -> EvalPlan:
    """Parse like ``lm-eval run``, then fill distjudge's defaults where the user gave none."""
    from distjudge_eval.task_names import include_paths

    args, raw_key = _strip_secret_args(list(args))
    if args[:1] == ["run"]:
        args = args[1:]
    ns = eval_parser().parse_args(args)
    data_dir, strict = ns.__dict__.pop("data_dir"), ns.__dict__.pop("strict")
    _merge_config_file(ns)
    api_key = _pop_secrets(ns) or raw_key
    user_include = _as_list(ns.include_path)
    ns.include_path = include_paths(user_include)  # a list: lm-eval's TaskManager takes one
    ns.model = ns.model or DEFAULT_MODEL
    if ns.model in EMBEDDED_BACKENDS and "pretrained" not in (ns.model_args or {}):
        # no model named: the embedded one, under the user's other args (peft=runs/tox alone
        # scores the embedded judge's fine-tune; lm-eval's own default would be gpt2)
        ns.model_args = _embedded_model_args() | dict(ns.model_args or {})
    ns.tasks = [t for item in _as_list(ns.tasks) for t in item.split(",") if t] or [*DEFAULT_TASKS]
    ns.output_path = ns.output_path or DEFAULT_OUTPUT
    if not getattr(ns, "predict_only", False):
        ns.log_samples = True
    ns.metadata = _run_settings(ns.metadata, data_dir, strict)
    folder = Path(data_dir).expanduser().resolve() if data_dir else None
    return EvalPlan(ns, user_include, folder, api_key)


def _as_list(value: str | Sequence[str] | None) -> list[str]:
    """A flag's one value, or a --config file's list."""
    if not value:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def _merge_config_file(ns: argparse.Namespace) -> None:
    """Apply an lm-eval ``--config`` YAML here (CLI flags win, as in lm-eval), so its values get
    the same defaults and secret scrubbing as flags."""
    if not ns.config:
        return
    from lm_eval._cli.utils import key_val_to_dict
    from lm_eval.config.evaluate_config import EvaluatorConfig

    try:
        values = EvaluatorConfig.load_yaml_config(ns.config)
        for key, value in values.items():
            if key in ("model_args", "metadata", "gen_kwargs") and isinstance(value, str):
                value = key_val_to_dict(value)
            if getattr(ns, key, None) in (None, {}, []):
                setattr(ns, key, value)
    except (OSError, ValueError, TypeError) as err:
        raise UserError(f"--config {ns.config}: {err}") from None
    ns.config = None


_SECRET_ARG = re.compile(r"(^|,|=)\s*(?:" + "|".join(SECRET_KEYS) + r")\s*=\s*([^,]*)")


def _strip_secret_args(args: list[str]) -> tuple[list[str], str | None]:
    """Take ``api_key=...`` out of the raw argument strings before anything parses them: lm-eval's
    key=value parser logs a repeated key with its value."""
    key = None
    out = []
    for arg in args:
        found = _SECRET_ARG.findall(arg)
        if found:
            key = found[-1][1].strip()
            arg = _SECRET_ARG.sub(lambda m: m.group(1) if m.group(1) == "=" else "", arg)
            arg = arg.strip(",").replace("=,", "=")
        out.append(arg)
    return out, key


def _pop_secrets(ns: argparse.Namespace) -> str | None:
    """lm-eval writes model_args (merged into every task's metadata) into its results and logs:
    an ``api_key`` is taken out of both and returned, to reach openai-judge in-process instead
    (``set_api_key``: never in model_args, results or os.environ)."""
    key = None
    for dest in ("model_args", "metadata"):
        values = getattr(ns, dest, None)
        if isinstance(values, dict):
            for secret in SECRET_KEYS:
                if secret in values:
                    key = str(values.pop(secret))
    return key


def _embedded_model_args() -> dict[str, Any]:
    from lm_eval._cli.utils import key_val_to_dict

    from distjudge_eval.embedded import embedded_model_args

    try:
        return key_val_to_dict(embedded_model_args())
    except (ModuleNotFoundError, FileNotFoundError) as err:
        raise UserError(f"{err} (or name a model with --model_args pretrained=...)") from None


def fill_device(ns: argparse.Namespace) -> None:
    """``cuda`` when there is a GPU, else ``cpu`` (lm-eval's own default is cuda:0). Done after
    the checks: importing torch alone takes seconds."""
    if not ns.device:
        import torch

        ns.device = "cuda" if torch.cuda.is_available() else "cpu"


def _run_settings(metadata: dict | None, data_dir: str | None, strict: bool) -> dict[str, Any]:
    """The user's --metadata plus --data_dir / --strict: lm-eval hands metadata to every task's
    data loader, so the settings reach the loaders without environment variables."""
    merged = dict(metadata or {})
    if data_dir:
        merged["data_dir"] = str(Path(data_dir).expanduser().resolve())
    if strict:
        merged["strict"] = True
    return merged


def check_before_model_load(plan: EvalPlan) -> None:
    """Everything a user can get wrong, in seconds, before minutes of model loading (cheapest
    checks first)."""
    from distjudge_eval.lm_eval_index import only_our_tasks
    from distjudge_eval.task_names import check_task_names

    ns = plan.namespace
    _check_data_dir(plan.data_dir)
    check_output_path(ns.output_path)
    _check_extras(ns.model_args or {})
    if ns.model == "openai-judge":
        from distjudge_eval.models.args import check_openai_key, openai_base_url

        base_url = openai_base_url((ns.model_args or {}).get("base_url"))
        check_openai_key(base_url, plan.api_key or os.environ.get("OPENAI_API_KEY"))
    local = check_task_names(ns.tasks, plan.user_include)
    built = local if preflight_tasks(local, ns, plan.data_dir) else []
    plan.ours_only = only_our_tasks(ns.tasks, built)
    _check_model_name(ns.model)


def _check_data_dir(data_dir: Path | None) -> None:
    if data_dir is not None and not data_dir.is_dir():
        raise UserError(
            f"--data_dir {data_dir}: no such folder (it should hold snli/, summeval/, mt_bench/;"
            " `distjudge data fetch` downloads them)"
        )


def check_output_path(output_path: str) -> None:
    """lm-eval writes its results only after the whole run, and only logs a failure: a folder it
    cannot write fails now instead."""
    import tempfile

    path = Path(output_path).expanduser()
    folder = path.parent if path.suffix == ".json" else path
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        in_the_way = isinstance(err, (FileExistsError, NotADirectoryError))
        reason = "a file is in the way" if in_the_way else (err.strerror or str(err))
        raise UserError(
            f"--output_path {output_path}: cannot write results there ({reason})"
        ) from None


def _check_extras(model_args: dict[str, Any]) -> None:
    import importlib.util

    if model_args.get("peft") and importlib.util.find_spec("peft") is None:
        raise missing_extra("peft", "train", "peft= in --model_args (a LoRA adapter)")


def _check_model_name(model: str) -> None:
    """A typo in --model would otherwise surface after lm-eval's 20 s task index. lm-eval's own
    names are known without importing them; ours need their (torch) imports, which the run
    needs next anyway, so this check comes last."""
    from lm_eval.models import MODEL_MAPPING

    if model in MODEL_MAPPING:
        return
    from lm_eval.api.registry import model_registry

    import distjudge_eval.models  # noqa: F401  (registers our lm-eval backends)

    if model not in model_registry:
        close = difflib.get_close_matches(model, list(model_registry.keys()), n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UserError(f"unknown --model {model!r}{hint}: default {DEFAULT_MODEL}")


def preflight_tasks(names: Sequence[str], ns: argparse.Namespace, data_dir: Path | None) -> bool:
    """Build the requested tasks that live in our folder or the user's (never lm-eval's own) with
    the run's metadata, as lm-eval will: a missing data file, or with --strict a malformed row,
    fails here; the loaded items stay cached in-process for lm-eval's own build."""
    if not names:
        return False
    from lm_eval.tasks import TaskManager

    from distjudge_eval.settings import DataDirError

    metadata = dict(ns.model_args or {}) | dict(ns.metadata or {})  # lm-eval merges them so
    manager = TaskManager(include_path=ns.include_path, include_defaults=False, metadata=metadata)
    lm_eval_log = logging.getLogger("lm_eval")
    level = lm_eval_log.level
    lm_eval_log.setLevel(logging.ERROR)  # its notes come again when lm-eval builds the tasks
    try:
        manager.load(list(names))
    except KeyError:
        return False  # e.g. a user's group naming lm-eval's own tasks: lm-eval's full index
    except DataDirError as err:
        if data_dir is None:
            raise
        raise UserError(f"--data_dir {data_dir}: {err}") from None
    finally:
        lm_eval_log.setLevel(level)
    return True


def run_eval(args: Sequence[str]) -> int:
    """``distjudge eval``: plan, check, then run lm-eval's own ``run`` command in-process."""
    args = list(args)
    if args[:1] and args[0] in LM_EVAL_PASSTHROUGH:
        return _run_lm_eval_subcommand(args)
    plan = plan_eval(args)
    check_before_model_load(plan)
    fill_device(plan.namespace)
    if isinstance(plan.namespace.model_args, dict):
        from distjudge_eval.embedded import use_converted

        plan.namespace.model_args = use_converted(plan.namespace.model_args)
    import distjudge_eval.models  # noqa: F401  (registers our lm-eval backends)

    if plan.api_key is not None:  # in-process: never through model_args (written) or os.environ
        from distjudge_eval.models.openai_judge import set_api_key

        set_api_key(plan.api_key)
    from lm_eval.utils import setup_logging

    setup_logging()
    from distjudge_eval.library_warnings import quiet_peft_deprecation
    from distjudge_eval.lm_eval_index import without_lm_eval_tasks

    index = without_lm_eval_tasks() if plan.ours_only else contextlib.nullcontext()
    try:
        with index, quiet_peft_deprecation():  # stock hf's peft= too
            plan.namespace.func(plan.namespace)
    except ValueError as err:  # a name written in lm-eval's task files that is no task there
        if not str(err).startswith("Tasks not found"):
            raise
        raise UserError(f"{err} (list them with `distjudge eval ls tasks`)") from None
    if os.environ.get("RANK", "0") != "0":  # accelerate launch: rank 0 gathers and writes
        return 0
    _print_summary(Path(plan.namespace.output_path), plan)
    return 0


def _run_lm_eval_subcommand(args: list[str]) -> int:
    """``distjudge eval ls tasks`` / ``validate``: lm-eval's command, seeing our tasks too."""
    from distjudge_eval.task_names import include_paths

    ns = lm_eval_parsers()[args[0]].parse_args(args[1:])
    ns.include_path = include_paths([ns.include_path] if ns.include_path else [])
    ns.func(ns)
    return 0


def _print_summary(output_path: Path, plan: EvalPlan) -> None:
    latest = newest_results_file(output_path)
    if latest is None:
        return
    from distjudge_eval.baselines import prior_kl_of_run

    try:
        prior = prior_kl_of_run(latest, plan.data_dir, plan.user_include)
    except Exception as err:  # the run is saved: a failing extra column must not fail it
        logging.getLogger("distjudge").warning("prior kl column skipped: %s", err)
        prior = {}
    print(f"\ndistjudge summary ({latest}):\n{summary_table(latest, prior)}")
    if prior:
        print(
            "prior kl: the judge that reads nothing (q = mean p of the task's train split) on "
            "the same items; a judge worth using has a lower kl"
        )
    for line in truncation_lines(latest):
        print(f"truncated: {line}")
    from distjudge_eval.position_bias import summary_lines

    for line in summary_lines(latest):
        print(f"position bias: {line}")


def truncation_lines(results_file: Path) -> list[str]:
    """One line per task whose prompts did not fit (the ``truncated`` count in the results):
    their numbers rest on cut prompts, or leave those items out (``truncation=skip``)."""
    results = json.loads(results_file.read_text()).get("results", {})
    return [
        f"{task}: {int(metrics['truncated,none'])} items did not fit the model's context "
        "(see the truncation= model arg)"
        for task, metrics in sorted(results.items())
        if isinstance(metrics.get("truncated,none"), (int, float)) and metrics["truncated,none"] > 0
    ]


def newest_results_file(output_path: Path) -> Path | None:
    candidates = [output_path] if output_path.suffix == ".json" else []
    candidates += list(output_path.glob("**/results_*.json")) if output_path.is_dir() else []
    files = [c for c in candidates if c.is_file()]
    return max(files, key=lambda p: p.stat().st_mtime) if files else None


def summary_table(results_file: Path, prior_kl: dict[str, float] | None = None) -> str:
    """Markdown table: one row per task, the distribution metrics side by side, and the prior
    judge's KL on the same items when known (read the table from that baseline)."""
    data = json.loads(results_file.read_text())
    prior_kl = prior_kl or {}
    extra = " prior kl |" if prior_kl else ""
    rows = ["| task | n | " + " | ".join(SUMMARY_METRICS) + " |" + extra]
    rows.append("|---|---:|" + "---:|" * len(SUMMARY_METRICS) + ("---:|" if prior_kl else ""))
    for task, metrics in sorted(data.get("results", {}).items()):
        if "kl,none" not in metrics:
            continue
        n = data.get("n-samples", {}).get(task, {}).get("effective", "group")
        vals = [metrics.get(f"{m},none") for m in SUMMARY_METRICS]
        cells = [f"{v:.4f}" if isinstance(v, (int, float)) else "" for v in vals]
        if prior_kl:
            cells.append(f"{prior_kl[task]:.4f}" if task in prior_kl else "")
        rows.append(f"| {task.strip(' -')} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


if __name__ == "__main__":
    raise SystemExit(main())
