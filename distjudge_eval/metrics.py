"""Per-item distribution metrics for a judge's q against the human p, and their aggregations.

Everything is float64 numpy in natural log. ``process_results`` is the lm-eval hook every
distjudge task uses; the aggregations are referenced from the task YAML.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from distjudge_eval.distributions import DELTAS, perturb, plurality_target

Q_FLOOR = 1e-12
LOG_Q_FLOOR = float(np.log(Q_FLOOR))
ECE_BINS = 15


@dataclass(frozen=True)
class Metric:
    """One per-item metric: its name in results, whether higher is better, how it aggregates.

    ``readouts`` says which task kinds report it (``logprob``: q from label log-likelihoods;
    ``verbalized``: q written by the judge). Adding a metric is one entry here plus its value in
    :func:`item_metrics`; task configs, summaries, compare and sweep read this registry.
    """

    name: str
    higher_is_better: bool
    aggregation: str = "mean"
    readouts: tuple[str, ...] = ("logprob", "verbalized")


METRICS: tuple[Metric, ...] = (
    Metric("kl", False),
    Metric("acc", True),
    *(Metric(f"kl_delta_{d:.2f}", False) for d in DELTAS),
    Metric("js", False),
    Metric("brier", False),
    Metric("entropy_gap", False),
    Metric("label_mass", True, readouts=("logprob",)),
    Metric("parse_fail", False, readouts=("verbalized",)),
    Metric("ece", False, aggregation="ece"),
)
METRIC_BY_NAME: dict[str, Metric] = {m.name: m for m in METRICS}


def metric_list(readout: str) -> list[dict[str, Any]]:
    """lm-eval ``metric_list`` entries for a task of this readout kind, from :data:`METRICS`."""
    out = []
    for m in METRICS:
        if readout not in m.readouts:
            continue
        agg: Any = expected_calibration_error if m.aggregation == "ece" else m.aggregation
        out.append({"metric": m.name, "aggregation": agg, "higher_is_better": m.higher_is_better})
    return out


def log_softmax(scores: Sequence[float]) -> np.ndarray:
    """log q from per-label log-likelihoods, stable for very negative scores."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or s.size == 0:
        raise ValueError(f"need a non-empty 1-D list of label scores, got {scores!r}")
    if np.isnan(s).any() or np.isposinf(s).any():
        raise ValueError(f"label scores must be finite or -inf, got {scores!r}")
    top = s.max()
    if not np.isfinite(top):
        raise ValueError("every label has log-likelihood -inf: q is undefined")
    shifted = s - top
    return shifted - np.log(np.exp(shifted).sum())


def floored_log_q(log_q: np.ndarray) -> np.ndarray:
    """log q floored at log(1e-12): only labels the model gives < 1e-12 (or exactly 0) change."""
    return np.maximum(log_q, LOG_Q_FLOOR)


def kl_divergence(p: Sequence[float], log_q: np.ndarray) -> float:
    """KL(p‖q) = Σ_{p_i>0} p_i (log p_i − log q_i); labels with p_i = 0 contribute nothing."""
    pa = np.asarray(p, dtype=np.float64)
    lq = floored_log_q(np.asarray(log_q, dtype=np.float64))
    mask = pa > 0
    return float(np.sum(pa[mask] * (np.log(pa[mask]) - lq[mask])))


def entropy(p: Sequence[float]) -> float:
    pa = np.asarray(p, dtype=np.float64)
    mask = pa > 0
    return float(-np.sum(pa[mask] * np.log(pa[mask])))


def js_divergence(p: Sequence[float], q: Sequence[float]) -> float:
    """Jensen–Shannon divergence in nats (the square of scipy's ``jensenshannon`` distance)."""
    pa = np.asarray(p, dtype=np.float64)
    qa = np.asarray(q, dtype=np.float64)
    m = 0.5 * (pa + qa)
    return 0.5 * _kl_plain(pa, m) + 0.5 * _kl_plain(qa, m)


def _kl_plain(a: np.ndarray, b: np.ndarray) -> float:
    mask = a > 0
    return float(np.sum(a[mask] * (np.log(a[mask]) - np.log(b[mask]))))


def brier(p: Sequence[float], q: Sequence[float]) -> float:
    """Multi-class Brier score against the soft human target: Σ_k (q_k − p_k)²."""
    return float(np.sum((np.asarray(q, np.float64) - np.asarray(p, np.float64)) ** 2))


def plurality_accuracy(p: Sequence[float], q: Sequence[float]) -> float:
    """1 if argmax q is the human plurality label; 1/k when it is one of k tied plurality labels.

    When q itself ties (a verbalized 0.5 / 0.5), the credit is averaged over q's tied labels, so
    a tie in q does not silently favour the first label.
    """
    qa = np.asarray(q, dtype=np.float64)
    top = np.flatnonzero(qa == qa.max())
    return float(plurality_target(p)[top].mean())


def item_metrics(p: Sequence[float], label_scores: Sequence[float], item_id: str) -> dict:
    """Every per-item metric from human p and the judge's per-label log-likelihoods."""
    pa = np.asarray(p, dtype=np.float64)
    if pa.shape != (len(label_scores),):
        raise ValueError(f"item {item_id}: p has {pa.size} labels but {len(label_scores)} scores")
    log_q = log_softmax(label_scores)
    q = np.exp(log_q)
    acc = plurality_accuracy(pa, q)
    out: dict[str, Any] = {
        "kl": kl_divergence(pa, log_q),
        "acc": acc,
        "js": js_divergence(pa, q),
        "brier": brier(pa, q),
        "entropy_gap": entropy(q) - entropy(pa),
        # Probability the judge puts on the label set at all (for API judges: the top-k mass
        # that mapped to labels, plus the floors of labels it did not return).
        "label_mass": float(np.exp(np.logaddexp.reduce(np.asarray(label_scores, np.float64)))),
    }
    for delta in DELTAS:
        out[delta_metric_name(delta)] = kl_divergence(perturb(pa, delta, item_id), log_q)
    # ECE needs (confidence, correctness) pairs; the full q and p ride along so per-sample
    # outputs can be re-analysed without re-running the model.
    out["ece"] = {"q": q.tolist(), "p": pa.tolist(), "confidence": float(q.max()), "correct": acc}
    return out


def delta_metric_name(delta: float) -> str:
    return f"kl_delta_{delta:.2f}"


def process_results(doc: Mapping[str, Any], results: Iterable[Any]) -> dict:
    """lm-eval hook for multiple_choice tasks: results are (loglikelihood, is_greedy) pairs."""
    scores = [r[0] if isinstance(r, (tuple, list)) else r for r in results]
    return item_metrics(doc["p"], scores, str(doc["id"]))


def expected_calibration_error(
    items: Sequence[Mapping[str, float]], n_bins: int = ECE_BINS
) -> float:
    """ECE with equal-width bins on the argmax confidence, weighted by bin size.

    Correctness is agreement with the human plurality (fractional on ties), the same as ``acc``.
    """
    if not items:
        return float("nan")
    conf = np.array([it["confidence"] for it in items], dtype=np.float64)
    correct = np.array([it["correct"] for it in items], dtype=np.float64)
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in np.unique(bins):
        sel = bins == b
        total += sel.sum() * abs(correct[sel].mean() - conf[sel].mean())
    return float(total / conf.size)
