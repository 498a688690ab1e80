"""Per-item distribution metrics for a judge's q against the human p, and their aggregations.

Everything is float64 numpy in natural log. ``process_results`` is the lm-eval hook every
distjudge task uses; :data:`METRICS` is the registry task configs are built from
(:func:`metric_list`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from distjudge_eval.distributions import DELTAS, N_DIRECTIONS, perturb, plurality_target
from distjudge_eval.errors import UserError
from distjudge_eval.pairwise import swap_permutation
from distjudge_eval.worst_case import worst_case_kl

Q_FLOOR = 1e-12
LOG_Q_FLOOR = float(np.log(Q_FLOOR))
ECE_BINS = 15


@dataclass(frozen=True)
class Metric:
    """One per-item metric: its name in results, its direction, how it aggregates.

    ``higher_is_better`` is None for a signed diagnostic with no better direction
    (``entropy_gap``); lm-eval accepts None and prints no arrow. ``readouts`` says which task
    kinds report it (``logprob``: q from label log-likelihoods; ``verbalized``: q written by the
    judge). Adding a metric is one entry here plus its value in :func:`item_metrics`; task
    configs, summaries, compare and sweep read this registry. ``aggregation`` is an lm-eval
    aggregation name, or ``ece`` / ``count`` for :func:`expected_calibration_error` /
    :func:`count_items`.
    """

    name: str
    higher_is_better: bool | None
    aggregation: str = "mean"
    readouts: tuple[str, ...] = ("logprob", "verbalized")


def worst_metric_name(delta: float) -> str:
    """``kl_worst_0.10``: max KL(p̃‖q) over p̃ in simplex ∩ L2-ball(p, δ)."""
    return f"kl_worst_{delta:.2f}"


def expected_metric_name(delta: float) -> str:
    """``kl_exp_0.10``: mean KL(p̃‖q) over seeded random perturbations of size δ."""
    return f"kl_exp_{delta:.2f}"


def delta_metric_name(delta: float) -> str:
    """Deprecated alias of :func:`worst_metric_name` (the old single-direction ``kl_delta_*``
    is gone); kept so readers that import it keep working until they name the reading."""
    return worst_metric_name(delta)


METRICS: tuple[Metric, ...] = (
    Metric("kl", False),
    Metric("acc", True),
    *(Metric(worst_metric_name(d), False) for d in DELTAS),
    *(Metric(expected_metric_name(d), False) for d in DELTAS),
    Metric("js", False),
    Metric("brier", False),
    Metric("entropy_gap", None),
    Metric("abs_entropy_gap", False),
    Metric("label_mass", True, readouts=("logprob",)),
    Metric("parse_fail", False, readouts=("verbalized",)),
    Metric("ece", False, aggregation="ece"),
    # 1 for an item whose prompt did not fit the judge's context (cut or skipped, see
    # distjudge_eval/truncation.py); the task adds it, and its aggregate is the count.
    Metric("truncated", False, aggregation="count"),
)
METRIC_BY_NAME: dict[str, Metric] = {m.name: m for m in METRICS}


def metric_list(readout: str) -> list[dict[str, Any]]:
    """lm-eval ``metric_list`` entries for a task of this readout kind, from :data:`METRICS`."""
    out = []
    for m in METRICS:
        if readout not in m.readouts:
            continue
        agg: Any = CUSTOM_AGGREGATIONS.get(m.aggregation, m.aggregation)
        out.append({"metric": m.name, "aggregation": agg, "higher_is_better": m.higher_is_better})
    return out


def count_items(flags: Sequence[float]) -> float:
    """How many items are flagged: a count reads better than a fraction for rare events like a
    truncated prompt (lm-eval gives a function it does not know no stderr)."""
    return float(sum(flags))


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


def label_permutation(order: str | None, n_labels: int) -> list[int] | None:
    """How the shown labels index the item's original order: None, or the slot swap."""
    if order in (None, "original"):
        return None
    if order == "swapped":
        return swap_permutation(n_labels)
    raise ValueError(f"unknown slot order {order!r} (expected 'original' or 'swapped')")


def check_temperature(temperature: float) -> float:
    t = float(temperature)
    if not np.isfinite(t) or t <= 0:
        raise ValueError(f"temperature must be a positive finite number, got {temperature!r}")
    return t


P_SUM_TOL = 1e-6


def check_distribution(p: Sequence[float], item_id: str) -> np.ndarray:
    """p as float64, refused unless it is a distribution: whatever path built it (a task of
    ours, or a hand-written one that stored raw counts as p), a wrong p is never scored."""
    pa = np.asarray(p, dtype=np.float64)
    ok = pa.ndim == 1 and pa.size >= 1 and np.isfinite(pa).all() and (pa >= 0).all()
    if not ok or abs(pa.sum() - 1.0) > P_SUM_TOL:
        raise UserError(
            f"item {item_id}: p = {list(p)} is not a probability distribution (non-negative, "
            "summing to 1); store vote counts under votes_field and let distjudge normalise them"
        )
    return pa


def item_metrics(
    p: Sequence[float],
    label_scores: Sequence[float],
    item_id: str,
    *,
    temperature: float = 1.0,
    order: str | None = None,
) -> dict:
    """Every per-item metric from human p and the judge's per-label log-likelihoods.

    q = softmax(scores / temperature); ``label_mass`` reads the raw scores (T only reshapes q).
    ``order`` is the doc's slot order: in ``"swapped"`` items the random perturbation directions
    are permuted with the labels (``kl_exp``); ``kl_worst`` does not depend on label order.
    """
    pa = check_distribution(p, item_id)
    if pa.shape != (len(label_scores),):
        raise ValueError(f"item {item_id}: p has {pa.size} labels but {len(label_scores)} scores")
    raw = np.asarray(label_scores, dtype=np.float64)
    log_q = log_softmax(raw / check_temperature(temperature))
    q = np.exp(log_q)
    acc = plurality_accuracy(pa, q)
    gap = entropy(q) - entropy(pa)
    out: dict[str, Any] = {
        "kl": kl_divergence(pa, log_q),
        "acc": acc,
        "js": js_divergence(pa, q),
        "brier": brier(pa, q),
        "entropy_gap": gap,
        "abs_entropy_gap": abs(gap),
        # Probability the judge puts on the label set at all (for API judges: the top-k mass
        # that mapped to labels, plus the floors of labels it did not return).
        "label_mass": float(np.exp(np.logaddexp.reduce(raw))),
    }
    worst = worst_case_kl(pa, log_q, np.asarray(DELTAS)).value
    expected = expected_kl(pa, log_q, DELTAS, item_id, label_permutation(order, pa.size))
    for delta, w, e in zip(DELTAS, worst, expected):
        out[worst_metric_name(delta)] = float(w)
        out[expected_metric_name(delta)] = float(e)
    # ECE needs (confidence, correctness) pairs; the full q and p ride along so per-sample
    # outputs can be re-analysed without re-running the model.
    out["ece"] = {"q": q.tolist(), "p": pa.tolist(), "confidence": float(q.max()), "correct": acc}
    return out


def expected_kl(
    p: np.ndarray,
    log_q: np.ndarray,
    deltas: Sequence[float],
    item_id: str,
    permutation: Sequence[int] | None = None,
    n: int = N_DIRECTIONS,
) -> np.ndarray:
    """Per δ: mean over n seeded directions u_i of KL(Π_simplex(p + δu_i) ‖ q)."""
    lq = floored_log_q(np.asarray(log_q, dtype=np.float64))
    moved = np.stack([perturb(p, d, item_id, n, permutation) for d in deltas])  # (D, n, K)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(moved > 0, moved * (np.log(moved) - lq), 0.0)
    return terms.sum(-1).mean(-1)


def scores_from_results(results: Iterable[Any]) -> list[float]:
    """Per-label log-likelihoods from lm-eval's (loglikelihood, is_greedy) results.

    Stored per-sample files hold them as strings (``filtered_resps``); both forms are read.
    """
    out = []
    for r in results:
        first = r[0] if isinstance(r, (tuple, list)) else r
        out.append(float(first))
    return out


def process_results(
    doc: Mapping[str, Any], results: Iterable[Any], temperature: float = 1.0
) -> dict:
    """lm-eval hook for multiple_choice tasks: results are (loglikelihood, is_greedy) pairs."""
    return item_metrics(
        doc["p"],
        scores_from_results(results),
        str(doc["id"]),
        temperature=temperature,
        order=doc.get("order"),
    )


def metrics_from_sample(row: Mapping[str, Any], temperature: float = 1.0) -> dict:
    """Recompute every metric of one stored lm-eval per-sample row (``--log_samples``).

    Log-likelihood tasks are recomputed exactly from ``filtered_resps``; verbalized rows (text
    replies) from the stored q and p, without ``label_mass``. Lets old runs gain new metrics.
    """
    doc = row["doc"]
    resps = row.get("filtered_resps")
    if resps and all(isinstance(r, (list, tuple)) and len(r) == 2 for r in resps):
        return process_results(doc, resps, temperature=temperature)
    q = np.asarray(row["ece"]["q"], dtype=np.float64)
    with np.errstate(divide="ignore"):
        out = item_metrics(
            row["ece"]["p"], np.log(q), str(doc["id"]), temperature=temperature,
            order=doc.get("order"),
        )  # fmt: skip
    out.pop("label_mass")
    return out


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


def score_rows(
    p_rows: Sequence[Sequence[float]], log_q: Sequence[Sequence[float]], delta: float = 0.25
) -> dict[str, Any]:
    """Per-item ``kl``, certified worst-case KL within δ (``worst``), plurality accuracy
    (``acc``) and confidence max q (``conf``) of q = exp(log_q) against rows of p, and the
    ``ece`` of the set: what an analysis of stored scores reports per judge, in one place.

    Rows may have different label counts (SummEval 5, NLI 3): the worst case is solved per
    label count, each group in one vectorised call.
    """
    p_rows = [np.asarray(p, dtype=np.float64) for p in p_rows]
    log_q = [np.asarray(lq, dtype=np.float64) for lq in log_q]
    kl = np.array([kl_divergence(p, lq) for p, lq in zip(p_rows, log_q, strict=True)])
    worst = np.empty(len(p_rows))
    for k in {len(p) for p in p_rows}:
        idx = [i for i, p in enumerate(p_rows) if len(p) == k]
        ps = np.stack([p_rows[i] for i in idx])
        lqs = np.stack([log_q[i] for i in idx])
        worst[idx] = worst_case_kl(ps, lqs, delta).value
    q = [np.exp(lq) for lq in log_q]
    acc = np.array([plurality_accuracy(p, qi) for p, qi in zip(p_rows, q)])
    conf = np.array([float(qi.max()) for qi in q])
    ece = expected_calibration_error(
        [{"confidence": float(c), "correct": float(a)} for c, a in zip(conf, acc)]
    )
    return {"kl": kl, "worst": worst, "acc": acc, "conf": conf, "ece": ece}


CUSTOM_AGGREGATIONS: dict[str, Any] = {
    "ece": expected_calibration_error,
    "count": count_items,
}
