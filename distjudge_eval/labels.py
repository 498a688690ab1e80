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


def declared_synonyms(labels: list[str] | tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """Synonyms from the label set that declares all of ``labels`` (none if no set does)."""
    for label_set in LABEL_SETS.values():
        if set(labels) <= set(label_set.labels):
            return dict(label_set.synonyms)
    return {}
