"""Reading row files (JSON lines, JSON, CSV/TSV, plain or gzip; a saved ``datasets`` folder).

Rows that cannot be read are counted per reason with the first place they occurred (a bad JSON
line, a line that is not UTF-8). A file that cannot be read on at all (a damaged ``.gz``, binary
garbage) is a one-line error naming the file and the line where reading stopped.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from distjudge_eval.data.items import SkipLog
from distjudge_eval.errors import UserError

ROW_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv")


class DamagedFileError(UserError):
    """A data file that cannot be read on (corrupt compression, not text)."""


def _binary_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    opener = gzip.open if path.suffix == ".gz" else open
    line_no = 0
    try:
        with opener(path, "rb") as fh:
            for line_no, line in enumerate(fh, start=1):
                yield line_no, line
    except (OSError, EOFError, zlib.error) as exc:
        raise DamagedFileError(
            f"{path}: cannot read past line {line_no} ({type(exc).__name__}: {exc}); "
            "the file is damaged: fetch it again (`distjudge data fetch --force`)"
        ) from None


def _text_lines(path: Path, skips: SkipLog) -> Iterator[tuple[str, str]]:
    """(``file:line``, text) for each line that decodes as UTF-8."""
    for line_no, raw in _binary_lines(path):
        where = f"{path.name}:{line_no}"
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            skips.skip("not UTF-8 text", f"{where} byte {exc.start}")
            continue
        if "\x00" in text:
            skips.skip("binary data (NUL byte)", where)
            continue
        yield where, text


def read_jsonl(path: Path, skips: SkipLog) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (``file:line``, object) for every line that parses to a JSON object."""
    for where, line in _text_lines(path, skips):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            skips.skip("bad JSON", where)
            continue
        if not isinstance(obj, dict):
            skips.skip("not a JSON object", where)
            continue
        yield where, obj


def _read_json(path: Path, skips: SkipLog) -> Iterator[tuple[str, dict[str, Any]]]:
    raw = b"".join(line for _, line in _binary_lines(path))
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DamagedFileError(f"{path}: not a JSON document ({exc})") from None
    if isinstance(data, dict) and len(data) == 1 and isinstance(next(iter(data.values())), list):
        data = next(iter(data.values()))  # {"data": [...]}
    if not isinstance(data, list):
        raise DamagedFileError(f"{path}: expected a JSON list of row objects")
    for i, obj in enumerate(data):
        where = f"{path.name}[{i}]"
        if not isinstance(obj, dict):
            skips.skip("not a JSON object", where)
            continue
        yield where, obj


def _read_csv(path: Path, skips: SkipLog, delimiter: str) -> Iterator[tuple[str, dict[str, Any]]]:
    lines = [text for _, text in _text_lines(path, skips)]
    reader = csv.DictReader(io.StringIO("".join(lines)), delimiter=delimiter)
    for row_no, row in enumerate(reader, start=2):
        where = f"{path.name}:{row_no}"
        if None in row:
            skips.skip("more cells than header columns", where)
            continue
        yield where, {k: _cell(v) for k, v in row.items()}


def _cell(value: str | None) -> Any:
    """CSV cells that hold JSON lists or objects (``["a", "b"]``) are parsed; others stay text."""
    if value is None:
        return None
    text = value.strip()
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return value
    return value


def _read_saved_dataset(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    import datasets

    try:
        data = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(f"{path}: not a saved `datasets` folder ({exc})") from None
    splits = data.items() if isinstance(data, datasets.DatasetDict) else [("", data)]
    for split, ds in splits:
        for i, row in enumerate(ds):
            row = dict(row)
            if split and "split" not in row:
                row["split"] = split
            yield f"{path.name}/{split}[{i}]" if split else f"{path.name}[{i}]", row


def row_format(path: Path) -> str:
    """jsonl | json | csv | tsv | dataset (a ``save_to_disk`` folder), from the name."""
    if path.is_dir():
        return "dataset"
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    fmt = suffixes[-1] if suffixes else ""
    if fmt not in ROW_SUFFIXES:
        raise UserError(
            f"{path}: unknown file type; use .jsonl, .json, .csv or .tsv (optionally .gz), "
            "or a folder written by datasets' save_to_disk"
        )
    return fmt.lstrip(".")


def read_rows(path: Path, skips: SkipLog) -> Iterator[tuple[str, dict[str, Any]]]:
    """(``where``, row) for every readable row of a data file of any supported format."""
    fmt = row_format(path)
    if fmt == "jsonl":
        yield from read_jsonl(path, skips)
    elif fmt == "json":
        yield from _read_json(path, skips)
    elif fmt in ("csv", "tsv"):
        yield from _read_csv(path, skips, "," if fmt == "csv" else "\t")
    else:
        yield from _read_saved_dataset(path)
