"""What a task YAML says about its data: files, fields, votes, labels, split.

A benchmark is a YAML and a data file. The YAML's ``dataset_kwargs`` (lm-eval's own place for
"how to load the data") holds these keys; ``doc_to_choice`` holds the labels. Every key is
checked here, once, so a typo is one line naming the key and the nearest valid one.

Field paths are dotted (``example.premise``) and may list alternatives (``[sentence1,
example.premise]``): the first one present in a row is used, so one task can read two source
formats (the full MNLI release, or the MNLI items inside ChaosNLI).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from distjudge_eval.errors import UserError

READERS = ("rows", "summeval", "mtbench")
VOTE_FORMATS = ("labels", "counts")
ORDERS = ("canonical", "swapped")

# Keys lm-eval or our CLI merge into the custom_dataset kwargs: never spec errors.
RUNTIME_KEYS = {"data_dir", "strict", "config_source", "version", "temperature", "eval_split"}


@dataclass(frozen=True)
class DataSpec:
    """How rows of a data file become items ``{id, split, votes, p, target, <fields>}``."""

    labels: tuple[str, ...]
    data_files: tuple[str, ...]
    reader: str = "rows"
    id_field: tuple[str, ...] = ("id",)
    votes_field: tuple[tuple[str, ...], ...] = (("votes",),)
    votes_format: str = "labels"
    fields: tuple[tuple[str, tuple[str, ...]], ...] = ()
    label_map: tuple[tuple[str, str], ...] = ()
    synonyms: tuple[tuple[str, tuple[str, ...]], ...] = ()
    split_by: tuple[str, ...] | None = None
    split_pattern: str | None = None
    split_field: tuple[str, ...] | None = None
    train_fraction: float = 0.8
    split_seed: int = 20240521
    order: str = "canonical"
    options: tuple[tuple[str, str], ...] = field(default=())

    @property
    def synonym_map(self) -> dict[str, tuple[str, ...]]:
        return dict(self.synonyms)

    @property
    def option_map(self) -> dict[str, str]:
        return dict(self.options)


# name -> (what it is, for the error message)
SPEC_KEYS: dict[str, str] = {
    "data_files": "file(s) holding the rows: a path, or a list of alternatives (first found)",
    "reader": f"how rows become items: one of {READERS}",
    "id_field": "the field that names an item (dotted path)",
    "votes_field": "the field with the votes (dotted path), or a list of count columns",
    "votes_format": f"{VOTE_FORMATS}: per-annotator labels, or counts per label",
    "fields": "the text fields the prompt uses: a list, or {name: dotted.path}",
    "label_map": "raw vote value -> label, e.g. {e: entailment}",
    "synonyms": "label -> other spellings a judge may write",
    "split_by": "the group key that must not straddle train and test (default: the id)",
    "split_pattern": "regex whose first group is taken from the split key",
    "split_field": "a field that already holds train/test (overrides the hashed split)",
    "train_fraction": "share of groups in train (default 0.8)",
    "split_seed": "seed of the hashed split (default 20240521)",
    "order": f"pairwise slot order: one of {ORDERS}",
    "labels": "the labels (normally doc_to_choice)",
    # reader options
    "dimension": "summeval: coherence | consistency | fluency | relevance",
    "raters": "summeval: all | experts | crowd",
}
OPTION_KEYS = ("dimension", "raters")


def _paths(value: Any, key: str) -> tuple[str, ...]:
    """A field path or a list of alternative paths."""
    items = value if isinstance(value, (list, tuple)) else [value]
    if not items or not all(isinstance(v, str) and v.strip() for v in items):
        raise UserError(f"dataset_kwargs.{key} must be a field name or a list of names")
    return tuple(v.strip() for v in items)


def label_text(value: Any) -> str:
    """A label as text: YAML/JSON numbers become their plain spelling (2.0 -> "2")."""
    if isinstance(value, bool):
        raise UserError(
            f"a label or vote value reads as the YAML boolean {value}: yes/no/true/false/on/off "
            "are booleans in YAML, so quote them, e.g. doc_to_choice: ['yes', 'no']"
        )
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def parse_spec(kwargs: Mapping[str, Any], labels: Sequence[Any] | None = None) -> DataSpec:
    """A checked :class:`DataSpec` from a task's ``dataset_kwargs`` (plus lm-eval metadata)."""
    unknown = [k for k in kwargs if k not in SPEC_KEYS and k not in RUNTIME_KEYS]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(key, list(SPEC_KEYS), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UserError(
            f"dataset_kwargs: unknown key {key!r}{hint}; valid keys: {', '.join(SPEC_KEYS)}"
        )
    raw_labels = labels if labels is not None else kwargs.get("labels")
    if not isinstance(raw_labels, (list, tuple)) or len(raw_labels) < 2:
        raise UserError("a task needs at least two labels: set doc_to_choice to a list")
    label_tuple = tuple(label_text(v) for v in raw_labels)
    if len(set(label_tuple)) != len(label_tuple):
        raise UserError(f"labels must be distinct, got {list(label_tuple)}")

    files = kwargs.get("data_files")
    if files is None:
        raise UserError("dataset_kwargs.data_files is required: the file holding the rows")
    files_t = _paths(files, "data_files")

    reader = str(kwargs.get("reader", "rows"))
    if reader not in READERS:
        raise UserError(f"dataset_kwargs.reader must be one of {READERS}, got {reader!r}")
    votes_format = str(kwargs.get("votes_format", "labels"))
    if votes_format not in VOTE_FORMATS:
        raise UserError(f"dataset_kwargs.votes_format must be one of {VOTE_FORMATS}")

    votes_raw = kwargs.get("votes_field", "votes")
    if isinstance(votes_raw, (list, tuple)) and votes_format == "counts" and len(votes_raw) > 1:
        # one count column per label, in label order
        if len(votes_raw) != len(label_tuple):
            raise UserError(
                f"dataset_kwargs.votes_field lists {len(votes_raw)} count columns for "
                f"{len(label_tuple)} labels: give one column per label, in label order"
            )
        votes_field = tuple(_paths(v, "votes_field") for v in votes_raw)
    else:
        votes_field = (_paths(votes_raw, "votes_field"),)

    fields_raw = kwargs.get("fields", [])
    if isinstance(fields_raw, Mapping):
        fields = tuple((str(k), _paths(v, f"fields.{k}")) for k, v in fields_raw.items())
    elif isinstance(fields_raw, (list, tuple)):
        fields = tuple((str(f), (str(f),)) for f in fields_raw)
    else:
        raise UserError("dataset_kwargs.fields must be a list of names or {name: path}")

    label_map = _label_map(kwargs.get("label_map", {}), label_tuple)
    synonyms = _synonyms(kwargs.get("synonyms", {}), label_tuple)

    pattern = kwargs.get("split_pattern")
    if pattern is not None:
        try:
            if re.compile(str(pattern)).groups < 1:
                raise UserError("dataset_kwargs.split_pattern needs one (group)")
        except re.error as exc:
            raise UserError(f"dataset_kwargs.split_pattern is not a regex: {exc}") from None
    fraction = float(kwargs.get("train_fraction", 0.8))
    if not 0.0 < fraction < 1.0:
        raise UserError(f"dataset_kwargs.train_fraction must be in (0, 1), got {fraction}")
    order = str(kwargs.get("order", "canonical"))
    if order not in ORDERS:
        raise UserError(f"dataset_kwargs.order must be one of {ORDERS}, got {order!r}")

    return DataSpec(
        labels=label_tuple,
        data_files=files_t,
        reader=reader,
        id_field=_paths(kwargs.get("id_field", "id"), "id_field"),
        votes_field=votes_field,
        votes_format=votes_format,
        fields=fields,
        label_map=label_map,
        synonyms=synonyms,
        split_by=_paths(kwargs["split_by"], "split_by") if kwargs.get("split_by") else None,
        split_pattern=str(pattern) if pattern is not None else None,
        split_field=_paths(kwargs["split_field"], "split_field")
        if kwargs.get("split_field")
        else None,
        train_fraction=fraction,
        split_seed=int(kwargs.get("split_seed", 20240521)),
        order=order,
        options=tuple((k, str(kwargs[k])) for k in OPTION_KEYS if kwargs.get(k) is not None),
    )


def _label_map(raw: Any, labels: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, Mapping):
        raise UserError("dataset_kwargs.label_map must map raw vote values to labels")
    out = []
    for key, value in raw.items():
        if label_text(value) not in labels:
            raise UserError(f"label_map: {key!r} maps to {value!r}, which is not a label {labels}")
        out.append((label_text(key), label_text(value)))
    return tuple(out)


def _synonyms(raw: Any, labels: tuple[str, ...]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if not isinstance(raw, Mapping):
        raise UserError("dataset_kwargs.synonyms must map a label to a list of spellings")
    out = []
    for key, values in raw.items():
        if label_text(key) not in labels:
            raise UserError(f"synonyms: {key!r} is not a label {labels}")
        vals = values if isinstance(values, (list, tuple)) else [values]
        out.append((label_text(key), tuple(label_text(v) for v in vals)))
    return tuple(out)
