"""``distjudge data fetch | info``: download the original files, or summarise what each task reads."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from distjudge_eval.settings import DATA_DIR_ENV, DEFAULT_DATA_DIR


def main(args: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="distjudge data")
    sub = parser.add_subparsers(dest="action", required=True)
    fetch_p = sub.add_parser("fetch", help="download the original files and verify checksums")
    default_dir = os.environ.get(DATA_DIR_ENV) or str(DEFAULT_DATA_DIR)
    fetch_p.add_argument("--data_dir", default=default_dir)
    fetch_p.add_argument("--datasets", nargs="*", default=None, help="snli summeval mt_bench mnli")
    fetch_p.add_argument("--force", action="store_true")
    info_p = sub.add_parser("info", help="items per split and skipped rows for each task")
    info_p.add_argument("--data_dir", default=None)
    info_p.add_argument("--strict", action="store_true")
    ns = parser.parse_args(list(args))

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if ns.action == "fetch":
        from distjudge_eval.data.fetch import fetch

        report = fetch(Path(ns.data_dir).expanduser(), ns.datasets, force=ns.force)
        print(report.summary())
        return 0
    return _data_info(ns.data_dir, ns.strict)


def _data_info(data_dir: str | None, strict: bool) -> int:
    from distjudge_eval.data.registry import load_items
    from distjudge_eval.data.summeval import DIMENSIONS
    from distjudge_eval.settings import DataDirError

    jobs = [("snli", {}), ("mnli", {}), ("mtbench", {})]
    jobs += [("summeval", {"dimension": d}) for d in DIMENSIONS]
    print("| benchmark | items | train | test |\n|---|---:|---:|---:|")
    for bench, opts in jobs:
        try:
            items = load_items(bench, data_dir=data_dir, strict=strict, **opts)
        except DataDirError as exc:
            print(f"| {bench} | missing: {exc} | | |")
            continue
        n_train = sum(it["split"] == "train" for it in items)
        label = bench + "".join(f" {v}" for v in opts.values())
        print(f"| {label} | {len(items)} | {n_train} | {len(items) - n_train} |")
    return 0
