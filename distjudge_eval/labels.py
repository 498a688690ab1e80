"""Label sets: the canonical label strings of each benchmark and their surface variants.

One home for what a label is called, so tasks, readouts and trainers agree on order and spelling.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class LabelSet:
    """Ordered canonical labels, plus synonyms a judge may write for each of them."""

    name: str
    labels: tuple[str, ...]
    synonyms: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def index(self, label: str) -> int:
        """Index of a canonical label or one of its synonyms (case- and space-insensitive)."""
        key = label.strip().lower()
        for i, canonical in enumerate(self.labels):
            variants = (canonical, *self.synonyms.get(canonical, ()))
            if key in (v.lower() for v in variants):
                return i
        raise KeyError(f"{label!r} is not a label of {self.name}: expected one of {self.labels}")

    def __len__(self) -> int:
        return len(self.labels)


NLI = LabelSet(
    name="nli",
    labels=("entailment", "neutral", "contradiction"),
    synonyms={
        "entailment": ("entails", "entailed", "yes", "true"),
        "neutral": ("maybe", "unknown", "undetermined"),
        "contradiction": ("contradicts", "contra", "no", "false"),
    },
)

LIKERT_5 = LabelSet(name="likert5", labels=("1", "2", "3", "4", "5"))

PAIRWISE = LabelSet(
    name="pairwise",
    labels=("A", "B", "tie"),
    synonyms={"A": ("[[A]]", "model_a"), "B": ("[[B]]", "model_b"), "tie": ("[[C]]", "C", "draw")},
)

LABEL_SETS: dict[str, LabelSet] = {ls.name: ls for ls in (NLI, LIKERT_5, PAIRWISE)}


def register_label_set(label_set: LabelSet) -> None:
    """Make a task's declared synonyms known to the readouts (built when the task is built).

    A task YAML declares its labels and synonyms; backends only see label strings, so they find
    the synonyms here by label set. Built-in sets keep the synonyms they declare above.
    """
    known = LABEL_SETS.get(label_set.name)
    if known is not None and known.labels == label_set.labels and not label_set.synonyms:
        return
    LABEL_SETS[label_set.name] = label_set


def declared_synonyms(labels: list[str] | tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """Synonyms of ``labels`` declared by every label set that has exactly these labels (or, if
    none has, by a set that contains them all), merged."""
    wanted = {label.strip() for label in labels}
    exact = [ls for ls in LABEL_SETS.values() if set(ls.labels) == wanted]
    chosen = exact or [ls for ls in LABEL_SETS.values() if wanted <= set(ls.labels)][:1]
    merged: dict[str, tuple[str, ...]] = {}
    for label_set in chosen:
        for label, syns in label_set.synonyms.items():
            merged[label] = tuple(dict.fromkeys((*merged.get(label, ()), *syns)))
    return merged
