"""One label-matching policy for both single-token readouts: the local first_token readout
(token ids) and openai-judge (token strings) give the same token text the same label."""

from __future__ import annotations

import math

import pytest

from distjudge_eval.label_match import LabelMatcher, first_token_sets, first_token_text
from distjudge_eval.labels import NLI, PAIRWISE
from distjudge_eval.models.openai_judge import label_logprobs


class GreedyTokenizer:
    """Longest-match tokenizer over a fixed vocabulary (every single character included), so
    the tokens' texts are known exactly."""

    def __init__(self, pieces: list[str], text: str) -> None:
        chars = sorted(set(text))
        self.vocab = list(dict.fromkeys([*pieces, *chars]))
        self.ids = {piece: i for i, piece in enumerate(self.vocab)}

    def encode(self, s: str) -> list[int]:
        out, i = [], 0
        while i < len(s):
            piece = max((p for p in self.vocab if s.startswith(p, i)), key=len)
            out.append(self.ids[piece])
            i += len(piece)
        return out


# Pieces chosen so that first tokens are whole words, prefixes ("contra", " Ent", "neut"),
# shared prefixes ("n", " N": neutral / no) and tokens that are bare punctuation ("[[").
PIECES = [" Ent", "ent", "ail", "ment", "neut", "ral", " N", "n", "o", "contra", "diction", " Yes"]
PIECES += ["yes", " no", "NO", "Contr", " Maybe", "un", "known", "[[", "A", "B", "]]", " tie", "t"]
CASES = [
    (list(NLI.labels), NLI.synonyms),
    (list(PAIRWISE.labels), PAIRWISE.synonyms),
]


@pytest.mark.parametrize(("labels", "synonyms"), CASES)
def test_both_backends_map_the_same_token_text_to_the_same_label(
    labels: list[str], synonyms: dict[str, tuple[str, ...]]
) -> None:
    text = "".join(labels) + "".join(w for ws in synonyms.values() for w in ws)
    tok = GreedyTokenizer(PIECES, text.lower() + text.upper() + text + " ")
    sets = first_token_sets(tok.encode, labels, synonyms)
    local = {tok.vocab[t]: k for k, ids in enumerate(sets.token_ids) for t in ids}
    local |= {tok.vocab[t]: None for t in sets.dropped}
    api = LabelMatcher.for_labels([" " + label for label in labels], synonyms)
    assert local == {text: api.match(text) for text in local}
    assert None in local.values() and len(set(local.values())) == len(labels) + 1

    # The same candidate tokens with the same probabilities give the same per-label mass in
    # both readouts (first_token sums over ids; openai-judge maps strings in top_logprobs).
    probs = {t: (i + 1) / 1000 for i, t in enumerate(local)}
    top = [{"token": t, "logprob": math.log(p)} for t, p in probs.items()]
    api_mass = [math.exp(lp) for lp in label_logprobs(top, api)[0]]
    local_mass = [sum(probs[tok.vocab[t]] for t in ids) for ids in sets.token_ids]
    assert api_mass == pytest.approx(local_mass)


def test_nli_examples_of_the_policy() -> None:
    m = LabelMatcher.for_labels(list(NLI.labels))
    assert [m.match(t) for t in ("Ent", " contra", "NO", "[[neutral]]", "unk")] == [0, 2, 2, 1, 1]
    assert m.match("n") is None and m.match(" [[") is None  # ambiguous; no text


def test_a_token_text_is_recovered_from_encode_alone() -> None:
    tok = GreedyTokenizer(["neut", "ral", " N"], "neutral N")
    assert first_token_text(tok.encode, "neutral") == (tok.ids["neut"], "neut")
    assert first_token_text(tok.encode, " Neutral") == (tok.ids[" N"], " N")
