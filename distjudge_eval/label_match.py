"""Which label a judge's first token stands for: one policy for every backend.

Both readouts that look at a single next token use this module: ``openai-judge`` (token
*strings* from ``top_logprobs``) and the local ``first_token`` readout of ``hf-judge`` and the
trainer (token *ids* of a tokenizer). Before, the API path matched prefixes and the local path
dropped any token id two labels shared; the same token could count differently.

The policy, on a token's text:

1. normalise: strip whitespace, brackets, quotes and ``.:,;*``, lower-case (:func:`normalise`);
   a token that normalises to nothing (a bare space, a quote) stands for no label;
2. variants of a label: the label and its declared synonyms (``distjudge_eval.labels``),
   normalised;
3. a token that equals variants of exactly one label stands for it; one that equals variants of
   several stands for none;
4. else a token that is a prefix of variants of exactly one label stands for it ("contra" →
   contradiction, "Ent" → entailment); a prefix of several labels' variants ("n": neutral /
   no) stands for none.

Token ids (local readout). The candidates are the first tokens of every surface spelling of
every variant (:func:`surface_variants`: case forms, with and without a leading space). A
candidate's text is recovered with ``encode`` alone, as the shortest prefix of the spelling that
encodes to exactly that one token, and the policy above decides its label; a candidate that
stands for no label is dropped (and reported). So the same token text maps to the same label in
both backends (tests/harness/test_label_match.py checks it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from distjudge_eval.labels import declared_synonyms

STRIP = " \t\n\r[](){}<>*\"'`.:,;"


def normalise(token: str) -> str:
    """A token's text as the policy compares it: no surrounding punctuation, lower case."""
    return token.strip(STRIP).lower()


def surface_variants(label: str, synonyms: Sequence[str] = ()) -> list[str]:
    """The spellings a judge may start its answer with: case variants, ± a leading space."""
    out: list[str] = []
    for word in (label, *synonyms):
        for cased in (word, word.lower(), word.capitalize(), word.upper()):
            for spaced in (cased, " " + cased):
                if spaced not in out:
                    out.append(spaced)
    return out


@dataclass
class LabelMatcher:
    """Maps a token's text to a label index by the module's policy (None: no label)."""

    variants: list[set[str]]

    @classmethod
    def for_labels(
        cls, labels: Sequence[str], synonyms: Mapping[str, Sequence[str]] | None = None
    ) -> LabelMatcher:
        """For labels as lm-eval passes them (leading spaces allowed); ``synonyms`` default to
        those declared for this label set in ``distjudge_eval.labels``."""
        stripped = [label.strip() for label in labels]
        if synonyms is None:
            synonyms = declared_synonyms(stripped)
        variants = []
        for label in stripped:
            words = (label, *synonyms.get(label, ()))
            variants.append({normalise(w) for w in words if normalise(w)})
        return cls(variants)

    def match(self, token: str) -> int | None:
        key = normalise(token)
        if not key:
            return None
        exact = [i for i, vs in enumerate(self.variants) if key in vs]
        if len(exact) == 1:
            return exact[0]
        if exact:
            return None
        prefix = [i for i, vs in enumerate(self.variants) if any(v.startswith(key) for v in vs)]
        return prefix[0] if len(prefix) == 1 else None


def first_token_text(encode: Callable[[str], list[int]], spelling: str) -> tuple[int, str] | None:
    """The first token id of ``spelling`` and its text: the shortest prefix of the spelling
    that encodes to exactly that token (needs no decode, so any tokenizer's ``encode`` works)."""
    ids = encode(spelling)
    if not ids:
        return None
    first = ids[0]
    for end in range(1, len(spelling) + 1):
        if encode(spelling[:end]) == [first]:
            return first, spelling[:end]
    return first, spelling  # a tokenizer that never encodes a prefix alone: the whole spelling


@dataclass(frozen=True)
class FirstTokenSets:
    token_ids: list[list[int]]
    dropped: dict[int, list[str]]  # token id that stands for no label -> labels that spelled it


def first_token_sets(
    encode: Callable[[str], list[int]],
    labels: Sequence[str],
    synonyms: Mapping[str, Sequence[str]] | None = None,
) -> FirstTokenSets:
    """First-token ids per label, by the module's policy on each candidate token's text.

    ``encode`` must not add special tokens. Raises when a label keeps no token, since then
    first-token q cannot tell that label apart: use ``full`` mode.
    """
    synonyms = dict(synonyms or {})
    matcher = LabelMatcher.for_labels(labels, synonyms)
    kept: list[list[int]] = [[] for _ in labels]
    spelled_by: dict[int, list[str]] = {}
    verdict: dict[int, int | None] = {}
    for label in labels:
        for spelling in surface_variants(label, synonyms.get(label, ())):
            found = first_token_text(encode, spelling)
            if found is None:
                continue
            token, text = found
            owners = spelled_by.setdefault(token, [])
            if label not in owners:
                owners.append(label)
            if token not in verdict:
                verdict[token] = matcher.match(text)
            target = verdict[token]
            if target is not None and token not in kept[target]:
                kept[target].append(token)
    dropped = {t: spelled_by[t] for t, v in verdict.items() if v is None}
    for label, ids in zip(labels, kept):
        if not ids:
            raise ValueError(
                f"label {label!r} keeps no first token of its own (tokens standing for no "
                f"single label: {sorted(dropped)}): first_token mode cannot separate it; use "
                f"mode=full"
            )
    return FirstTokenSets(kept, dropped)
