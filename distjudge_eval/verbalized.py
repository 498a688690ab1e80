"""Verbalized readout: the judge writes its probabilities as text; we parse and score them.

Two formats, one parser each:

* a binary probability, ``<prob>0.73</prob>`` = P(second option, e.g. answer B, is better);
  the tag may be cut off by a stop sequence or given as the generation prefix, so a reply that
  *starts* with the number (``0.73``, ``0.73</prob>``, ``73%``) is read too;
* a label distribution, ``entailment: 0.7, neutral: 0.2, contradiction: 0.1`` (``=`` works as
  well, labels may be synonyms, numbers may be percentages); sums within 10% of 1 are
  renormalised.

Anything else is unparsable: it is counted (per-item metric ``parse_fail``) and scored as the
uniform distribution, the documented fallback. Parsed probabilities are clipped to
[VERBAL_FLOOR, 1] and renormalised, since a judge that writes 0 or 1 would otherwise have
infinite KL on any item humans disagree on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from distjudge_eval.labels import LabelSet
from distjudge_eval.metrics import item_metrics
from distjudge_eval.pairwise import binary_target

VERBAL_FLOOR = 0.01
SUM_TOLERANCE = 0.1
_NUM = r"(?P<num>[-+]?(?:\d+(?:\.\d*)?|\.\d+))\s*(?P<pct>%)?"
_TAGGED = re.compile(r"<prob>\s*" + _NUM + r"\s*(?:</prob>|$)", re.IGNORECASE)
_LEADING = re.compile(r"^\s*" + _NUM + r"\s*(?:</prob>.*)?$", re.IGNORECASE | re.DOTALL)
_PAIR = re.compile(r"(?P<label>[\w\[\]]+)\s*[:=]\s*" + _NUM)


def _number(match: re.Match[str]) -> float | None:
    value = float(match.group("num")) / (100.0 if match.group("pct") else 1.0)
    return value if 0.0 <= value <= 1.0 else None


def parse_probability(text: str) -> float | None:
    """The probability in a ``<prob>x</prob>`` reply, or None when there is no valid one."""
    match = _TAGGED.search(text) or _LEADING.match(text)
    return None if match is None else _number(match)


def parse_distribution(text: str, label_set: LabelSet) -> list[float] | None:
    """A label distribution written as ``label: x`` pairs, or None when there is no valid one."""
    values = np.zeros(len(label_set))
    seen = set()
    for match in _PAIR.finditer(text):
        try:
            idx = label_set.index(match.group("label"))
        except KeyError:
            continue
        value = _number(match)
        if value is None or idx in seen:
            return None  # out of range, or one label given twice: ambiguous
        seen.add(idx)
        values[idx] = value
    total = values.sum()
    if not seen or abs(total - 1.0) > SUM_TOLERANCE:
        return None
    return (values / total).tolist()


def clip(q: Sequence[float]) -> list[float]:
    q = np.maximum(np.asarray(q, dtype=np.float64), VERBAL_FLOOR)
    return (q / q.sum()).tolist()


def verbal_q(text: str, label_set: LabelSet | None) -> tuple[list[float], bool]:
    """(q, parsed): with no label set, the binary format (q over (A, B)); fallback uniform."""
    if label_set is None:
        prob_b = parse_probability(text)
        q = None if prob_b is None else [1.0 - prob_b, prob_b]
        n = 2
    else:
        q = parse_distribution(text, label_set)
        n = len(label_set)
    if q is None:
        return [1.0 / n] * n, False
    return clip(q), True


def score(doc: Mapping[str, Any], text: str, label_set: LabelSet | None) -> dict[str, Any]:
    """Every distjudge metric for one verbalized reply, plus ``parse_fail``."""
    p = binary_target(doc["p"]) if label_set is None else list(doc["p"])
    q, parsed = verbal_q(text, label_set)
    out = item_metrics(p, np.log(q), str(doc["id"]), order=doc.get("order"))
    out.pop("label_mass")
    out["parse_fail"] = 0.0 if parsed else 1.0
    return out


def stop_sequences(gen_kwargs: Mapping[str, Any]) -> list[str]:
    """A task's ``until`` as a list (lm-eval allows one string or a list)."""
    until = gen_kwargs.get("until") or []
    return [until] if isinstance(until, str) else list(until)


def cut_at_stops(text: str, until: Sequence[str]) -> str:
    """The reply up to the first stop sequence, as lm-eval's backends return it."""
    for stop in until:
        if stop:
            text = text.split(stop, 1)[0]
    return text


def reply_text(results: Sequence[Any]) -> str:
    """lm-eval hands generate_until results as a one-element list of strings."""
    if len(results) != 1 or not isinstance(results[0], str):
        raise ValueError(f"expected one generated string, got {results!r}")
    return results[0]


def process_results_binary(doc: Mapping[str, Any], results: Sequence[Any]) -> dict[str, Any]:
    """lm-eval hook for pairwise tasks that ask for <prob>P(B better)</prob>."""
    return score(doc, reply_text(results), None)


def target_text(prob_b: float) -> str:
    """The verbalized reply for a probability, as an SFT target (after the ``<prob>`` prefix)."""
    return f"{prob_b:.2f}</prob>"


def hundredths(p: Sequence[float]) -> list[int]:
    """p in whole hundredths that sum to exactly 100 (largest remainder), so a written target
    is a distribution and never off from p by more than 0.01 per label."""
    scaled = np.asarray(p, dtype=np.float64) / np.sum(p) * 100.0
    cents = np.floor(scaled + 1e-9).astype(int)
    short = 100 - int(cents.sum())
    order = np.argsort(-(scaled - cents), kind="stable")
    cents[order[:short]] += 1
    return cents.tolist()


def distribution_text(p: Sequence[float], label_set: LabelSet) -> str:
    """The verbalized reply for a label distribution, as an SFT target: what the task's prompt
    asks for (``entailment: 0.60, neutral: 0.20, contradiction: 0.20``), two decimals summing to
    1, after the prompt's ``Answer:`` and up to the newline that stops generation."""
    if len(p) != len(label_set):
        raise ValueError(f"p has {len(p)} values for {len(label_set)} labels")
    cents = hundredths(p)
    pairs = (f"{label}: {c // 100}.{c % 100:02d}" for label, c in zip(label_set.labels, cents))
    return " " + ", ".join(pairs) + "\n"
