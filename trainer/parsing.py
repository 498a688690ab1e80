"""What the three trainer CLIs share before any model loads: argument parsing (TRL's
``TrlParser``: dataclass flags, dashed spellings, ``--config file.yaml``), the checks that make
a mistake cost a second and one line instead of a minute and a traceback, and checkpoint
resolution for ``--resume_from_checkpoint``."""

from __future__ import annotations

import difflib
import logging
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from distjudge_eval.errors import UserError, missing_extra

logger = logging.getLogger("distjudge")

CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
TRUE = {"true", "yes", "1"}
FALSE = {"false", "no", "0", "none", ""}


def require(modules: Sequence[str], command: str) -> None:
    """One line naming the ``train`` extra when a module it provides is missing."""
    for module in modules:
        try:
            found = find_spec(module) is not None
        except (ImportError, ValueError):  # a broken install counts as missing
            found = False
        if not found:
            raise missing_extra(module, "train", command)


def parse_args(
    argv: Sequence[str], dataclass_types: Sequence[type], prog: str, doc: str | None
) -> tuple[Any, ...]:
    """Flags and an optional ``--config file.yaml`` into the dataclasses; CLI flags win.

    Every mistake (an unknown flag, a bad value, a missing or malformed config file) becomes a
    :class:`UserError` with one line, not argparse's page-long usage or a traceback.
    """
    parser = make_parser(dataclass_types, prog, doc)
    args = _split_config_flag(argv)
    try:
        return tuple(parser.parse_args_and_config(args))
    except ValueError as exc:
        raise UserError(_unknown_flags_message(exc, parser, prog)) from None


def early_checks(argv: Sequence[str], config_cls: type, prog: str) -> None:
    """Our settings alone, checked before the trainer's arguments are even parsed.

    Parsing ``TrainingArguments`` imports transformers, torch and peft (15-20 s on a busy
    2-core machine); our own settings, the data dir and the task names need none of that. So
    they are parsed first by themselves (the trainer's flags are left for the full parse) and
    checked, and a typo in ``--task`` or a bad ``--max_train_items`` costs seconds.
    """
    if any(a in ("-h", "--help") for a in argv):
        return
    parser = make_parser([config_cls, EarlyTrainerFlags], prog, None)
    try:
        config, early, _rest = parser.parse_args_and_config(
            _split_config_flag(argv), return_remaining_strings=True
        )
    except ValueError as exc:
        raise UserError(_unknown_flags_message(exc, parser, prog)) from None
    preflight(config, prog)
    resolve_resume(early.resume_from_checkpoint, early.output_dir)
    if hasattr(config, "max_tokens_per_batch"):
        from distjudge_trainer.batching import check_budget_settings

        check_budget_settings(config.max_tokens_per_batch, early.train_sampling_strategy)


@dataclass
class EarlyTrainerFlags:
    """The trainer flags :func:`early_checks` reads (the full parse reads them again)."""

    output_dir: str | None = None
    resume_from_checkpoint: str | None = None
    train_sampling_strategy: str = "random"


def preflight(config: Any, prog: str) -> None:
    """Checks that need no model and no torch: extras, data dir, task names."""
    require(["accelerate"], prog)
    if config.use_lora:
        require(["peft"], f"{prog} with LoRA (the default; --use_lora False trains all weights)")
    config.data_dir = check_data_dir(config.data_dir)
    check_tasks(config.task_names(), config.user_paths())
    if hasattr(config, "swap_augment"):
        resolve_swap_augment(config)


def resolve_swap_augment(config: Any) -> bool:
    """``--swap_augment`` as a bool: unset means "when the task has a ``_swapped`` twin"; an
    explicit True without a twin is a one-line error. Stored back, so later reads agree."""
    if config.swap_augment is not False:
        twin = config.task + "_swapped"
        try:
            check_tasks([twin], config.user_paths())
            has_twin = True
        except UserError:
            has_twin = False
        if config.swap_augment is None:  # the default: augment when the task can be swapped
            config.swap_augment = has_twin
        elif not has_twin:
            raise UserError(
                f"--swap_augment True needs the task {twin!r} (the same items with A and B "
                "exchanged); add it, or pass --swap_augment False"
            )
    return bool(config.swap_augment)


def make_parser(dataclass_types: Sequence[type], prog: str, doc: str | None) -> Any:
    """TRL's parser whose argparse errors (a bad or missing value) are one-line UserErrors."""
    require(["trl"], prog)
    from trl import TrlParser

    class Parser(TrlParser):
        def error(self, message: str):
            raise UserError(f"{message} (see {prog} --help)")

    return Parser(list(dataclass_types), prog=prog, description=doc)


def _split_config_flag(argv: Sequence[str]) -> list[str]:
    """``--config=f.yaml`` -> ``--config f.yaml`` (TrlParser reads only the latter), and a
    missing or unreadable file is a one-line error rather than a traceback from open()."""
    args: list[str] = []
    for arg in argv:
        args += arg.split("=", 1) if arg.startswith("--config=") else [arg]
    if "--config" in args:
        at = args.index("--config")
        if at + 1 >= len(args):
            raise UserError("--config needs a YAML file")
        path = Path(args[at + 1]).expanduser()
        if not path.is_file():
            raise UserError(f"--config {args[at + 1]}: no such file")
        _check_yaml(path)
        args[at + 1] = str(path)
    return args


def _check_yaml(path: Path) -> None:
    import yaml

    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UserError(f"--config {path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(loaded, dict):
        raise UserError(f"--config {path}: expected a mapping of flag names to values")


def _unknown_flags_message(exc: ValueError, parser: Any, prog: str) -> str:
    """HfArgumentParser's 'Some specified arguments are not used' (or a TrainingArguments
    consistency check) as one line, with close matches for misspelt flags."""
    text = str(exc).strip().splitlines()[0]
    if "not used" not in text and "Unknown arguments" not in text:
        return f"{text} (see {prog} --help)"
    known = [s for action in parser._actions for s in action.option_strings]
    unknown = [a for a in text.replace("[", " ").replace("]", " ").replace(",", " ").split()]
    unknown = [a.strip("'\"") for a in unknown if a.strip("'\"").startswith("--")]
    hints = []
    for flag in unknown:
        close = difflib.get_close_matches(flag.split("=")[0], known, n=2, cutoff=0.75)
        if close:
            hints.append(f"{flag} (did you mean {' or '.join(close)}?)")
    suffix = f": {'; '.join(hints)}" if hints else ""
    return f"{text}{suffix} (see {prog} --help)"


# The trainers index only our tasks and the user's folders: lm-eval's thousands of built-in
# tasks carry no human distribution p to train on, and indexing them takes 30-50 s on a busy
# 2-core machine (our folders alone: well under a second).
INCLUDE_DEFAULT_TASKS = False


def check_tasks(names: Sequence[str], user_paths: Sequence[str]) -> None:
    """Unknown task names fail here, with close matches, before any model loads."""
    from distjudge_eval.task_names import check_task_names

    check_task_names(list(names), user_paths, include_defaults=INCLUDE_DEFAULT_TASKS)


def check_data_dir(data_dir: str | None) -> str | None:
    """A data dir the user named and is missing fails now (DataDirError), not inside lm-eval
    after the imports; an unset one is looked for when the train docs load, still before the
    model (a user's task with its file beside its YAML needs none).

    Returns ``--data_dir`` made absolute (None stays None: the tasks then use
    $DISTJUDGE_DATA_DIR or the fetch cache); the trainers hand it to the tasks as lm-eval
    metadata, never through the environment.
    """
    from distjudge_eval.settings import check_named_data_dir

    path = check_named_data_dir(data_dir)
    return str(path.resolve()) if data_dir and path is not None else None


def resolve_resume(value: str | bool | None, output_dir: str | None) -> str | None:
    """``--resume_from_checkpoint``: True -> the newest ``checkpoint-N`` in ``output_dir``
    (Trainer would look for a folder named "True"), False -> None, a path -> that path."""
    if value is None or (isinstance(value, bool) and not value):
        return None
    text = str(value).strip()
    if text.lower() in FALSE:
        return None
    if isinstance(value, bool) or text.lower() in TRUE:
        folder = Path(output_dir or "trainer_output")  # TrainingArguments' default
        last = newest_checkpoint(folder)
        if last is None:
            raise UserError(
                f"--resume_from_checkpoint True: no checkpoint-N folder in {folder}; train "
                "without it, or pass a checkpoint folder"
            )
        return last
    if not Path(text).expanduser().is_dir():
        raise UserError(f"--resume_from_checkpoint {text}: no such checkpoint folder")
    return text


def newest_checkpoint(folder: Path) -> str | None:
    """The ``checkpoint-N`` folder with the largest N (Trainer's own naming and choice)."""
    if not folder.is_dir():
        return None
    steps = {}
    for path in folder.iterdir():
        match = CHECKPOINT.match(path.name)
        if match and path.is_dir():
            steps[int(match.group(1))] = path
    return str(steps[max(steps)]) if steps else None


def run_main(prog: str, body: Callable[[], int]) -> int:
    """Run a CLI body; a :class:`UserError` is printed as one line with exit status 2."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return body()
    except UserError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
