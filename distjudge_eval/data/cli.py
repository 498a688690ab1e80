"""``distjudge data fetch | info``: download the original files, or count what each task reads.

Both spell datasets by their folder in the data dir (snli, summeval, mt_bench, mnli, chaosnli).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from distjudge_eval.errors import UserError
from distjudge_eval.settings import (
    DEFAULT_DATA_DIR,
    DataDirError,
    check_named_data_dir,
    resolve_data_dir,
)


def main(args: Sequence[str]) -> int:
    from distjudge_eval.data.fetch import SOURCES

    parser = argparse.ArgumentParser(prog="distjudge data")
    sub = parser.add_subparsers(dest="action", required=True)
    fetch_p = sub.add_parser("fetch", help="download the original files and verify checksums")
    fetch_p.add_argument("--data_dir", default=None, help=f"default: {DEFAULT_DATA_DIR}")
    fetch_p.add_argument("--datasets", nargs="*", default=None, help=" ".join(SOURCES))
    fetch_p.add_argument("--force", action="store_true")
    info_p = sub.add_parser("info", help="items per split and skipped rows for each task")
    info_p.add_argument("tasks", nargs="*", help="task names or patterns (default: all)")
    info_p.add_argument("--data_dir", default=None)
    info_p.add_argument("--include_path", action="append", default=[], help="your task folder")
    info_p.add_argument("--datasets", nargs="*", default=None, help="only these data folders")
    info_p.add_argument("--strict", action="store_true")
    ns = parser.parse_args(list(args))

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    if ns.action == "fetch":
        from distjudge_eval.data.fetch import fetch

        dest = Path(ns.data_dir).expanduser() if ns.data_dir else _default_fetch_dir()
        print(fetch(dest, ns.datasets, force=ns.force).summary())
        return 0
    return info(ns.tasks, ns.data_dir, ns.include_path, ns.datasets, ns.strict)


def _default_fetch_dir() -> Path:
    import os

    from distjudge_eval.settings import DATA_DIR_ENV

    return Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR).expanduser()


def info(
    patterns: Sequence[str],
    data_dir: str | None,
    include_paths: Sequence[str],
    datasets: Sequence[str] | None,
    strict: bool,
) -> int:
    """One row per task: items, train, test, skipped rows. Exit 1 if any task cannot load."""
    import fnmatch

    from distjudge_eval.data.catalog import find_tasks
    from distjudge_eval.data.load import built_in, load_with_skips, local_data_file
    from distjudge_eval.paths import tasks_dir

    check_named_data_dir(data_dir)  # a named data dir that is missing: one error
    for folder in include_paths:
        if not Path(folder).exists():
            raise UserError(f"--include_path {folder}: no such file or folder")
    entries = find_tasks([tasks_dir(), *include_paths])
    if patterns:
        entries = [e for e in entries if any(fnmatch.fnmatch(e.name, p) for p in patterns)]
        if not entries:
            raise UserError(f"no distjudge task matches {' '.join(patterns)}")
    if datasets:
        entries = [e for e in entries if _dataset_of(e.spec.data_files[-1]) in datasets]
    unlisted = ""
    try:
        resolve_data_dir(data_dir)
    except DataDirError as missing:  # the default fetch cache: only built-in tasks need it
        need = [
            e
            for e in entries
            if built_in(e.yaml_path.parent) and local_data_file(e.spec, str(e.yaml_path)) is None
        ]
        if len(need) == len(entries):
            raise  # a missing data dir is one error, not a row per task
        if need:
            entries = [e for e in entries if e not in need]
            names = ", ".join(e.name for e in need[:4]) + (", ..." if len(need) > 4 else "")
            unlisted = (
                f"\nNot listed: {len(need)} tasks that read the data dir ({names}): {missing}"
            )
    print("| task | data | items | train | test | skipped rows |\n|---|---|---:|---:|---:|---|")
    failed = 0
    for entry in entries:
        source = str(entry.yaml_path)
        try:
            items, skips = load_with_skips(entry.spec, data_dir, strict, config_source=source)
        except UserError as exc:
            failed += 1
            print(
                f"| {entry.name} | {_dataset_of(entry.spec.data_files[0])} | missing or bad: "
                f"{exc} | | | |"
            )
            continue
        n_train = sum(it["split"] == "train" for it in items)
        skipped = "; ".join(f"{n} {why}" for why, n in skips.counts.items()) or "0"
        used = _dataset_of(_used_file(entry, data_dir))
        print(
            f"| {entry.name} | {used} | {len(items)} | {n_train} | {len(items) - n_train} "
            f"| {skipped} |"
        )
    if unlisted:
        print(unlisted)
    return 1 if failed else 0


def _used_file(entry, data_dir: str | None) -> str:
    from distjudge_eval.data.load import resolve_data_file

    path = resolve_data_file(entry.spec, data_dir, str(entry.yaml_path))
    try:
        return path.relative_to(resolve_data_dir(data_dir)).as_posix()
    except (ValueError, DataDirError):  # outside the data dir, or there is none
        return str(path)


def _dataset_of(path: str) -> str:
    """The data-dir folder a file belongs to: the name ``data fetch --datasets`` uses."""
    return Path(path).parts[0] if not Path(path).is_absolute() else path
