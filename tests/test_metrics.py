"""Every metric against an independent computation (scipy, cvxpy, brute-force loops)."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.special import softmax
from scipy.stats import entropy as scipy_entropy

from distjudge_eval import metrics as M
from distjudge_eval.distributions import (
    DELTAS,
    perturb,
    perturbation_direction,
    plurality_target,
    project_to_simplex,
    votes_to_p,
)

RNG = np.random.default_rng(0)


def random_case(k: int) -> tuple[np.ndarray, np.ndarray]:
    votes = RNG.integers(0, 4, size=k)
    votes[RNG.integers(k)] += 1
    return votes / votes.sum(), RNG.normal(scale=4.0, size=k) - 5.0


@pytest.mark.parametrize("k", [2, 3, 5])
def test_kl_js_brier_entropy_match_scipy(k: int) -> None:
    for _ in range(50):
        p, scores = random_case(k)
        q = softmax(scores)
        out = M.item_metrics(p, scores, "x")
        assert out["kl"] == pytest.approx(scipy_entropy(p, q), rel=1e-10, abs=1e-12)
        assert out["js"] == pytest.approx(jensenshannon(p, q) ** 2, rel=1e-8, abs=1e-12)
        assert out["brier"] == pytest.approx(sum((qi - pi) ** 2 for pi, qi in zip(p, q)))
        assert out["entropy_gap"] == pytest.approx(scipy_entropy(q) - scipy_entropy(p))
        assert out["ece"]["q"] == pytest.approx(q.tolist(), rel=1e-10)


def test_kl_is_exact_for_extreme_but_representable_scores() -> None:
    p = np.array([0.5, 0.5, 0.0])
    scores = np.array([-1.0, -20.0, -900.0])  # naive exp() of -900 underflows to 0
    log_q = scores - np.logaddexp.reduce(scores)
    expected = sum(pi * (np.log(pi) - lq) for pi, lq in zip(p, log_q) if pi > 0)
    assert M.item_metrics(p, scores, "x")["kl"] == pytest.approx(expected, rel=1e-12)


def test_q_floor_applies_only_below_1e_minus_12() -> None:
    p = np.array([0.5, 0.5])
    # q_2 = e^-40 < 1e-12 is floored; a label with p = 0 is never floored.
    kl = M.item_metrics(p, [0.0, -40.0], "x")["kl"]
    assert kl == pytest.approx(0.5 * np.log(0.5) + 0.5 * (np.log(0.5) - np.log(1e-12)), rel=1e-6)
    assert M.item_metrics([1.0, 0.0], [0.0, -np.inf], "x")["kl"] == pytest.approx(0.0)


def test_bad_scores_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="undefined"):
        M.item_metrics([1.0, 0.0], [-np.inf, -np.inf], "x")
    with pytest.raises(ValueError, match="finite"):
        M.item_metrics([1.0, 0.0], [np.nan, 0.0], "x")
    with pytest.raises(ValueError, match="labels"):
        M.item_metrics([1.0, 0.0, 0.0], [0.0, 1.0], "x")
    with pytest.raises(ValueError, match="at least one vote"):
        votes_to_p([0, 0, 0])


def brute_plurality_acc(votes: list[int], pred: int) -> float:
    """Expected accuracy over every uniformly random tie-break, by enumeration."""
    top = max(votes)
    winners = [i for i, v in enumerate(votes) if v == top]
    return sum(1.0 for w in winners if w == pred) / len(winners)


def test_accuracy_against_plurality_with_ties_split() -> None:
    for _ in range(200):
        votes = RNG.integers(0, 4, size=3).tolist()
        votes[0] += 1
        p = votes_to_p(votes)
        scores = RNG.normal(size=3)
        expected = brute_plurality_acc(votes, int(np.argmax(scores)))
        assert M.item_metrics(p, scores, "x")["acc"] == pytest.approx(expected)
    assert plurality_target([0.4, 0.4, 0.2]).tolist() == [0.5, 0.5, 0.0]


def brute_ece(conf: list[float], correct: list[float], n_bins: int = 15) -> float:
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        members = [
            i for i, c in enumerate(conf) if (lo <= c < hi) or (b == n_bins - 1 and c == 1.0)
        ]
        if members:
            acc = sum(correct[i] for i in members) / len(members)
            avg = sum(conf[i] for i in members) / len(members)
            total += len(members) / len(conf) * abs(acc - avg)
    return total


def test_ece_matches_a_brute_force_loop() -> None:
    conf = [*RNG.uniform(1 / 3, 1.0, size=500).tolist(), 1.0, 1 / 3, 0.6]
    correct = RNG.choice([0.0, 0.5, 1.0], size=len(conf)).tolist()
    items = [{"confidence": c, "correct": a} for c, a in zip(conf, correct)]
    assert M.expected_calibration_error(items) == pytest.approx(brute_ece(conf, correct))
    assert np.isnan(M.expected_calibration_error([]))


def cvxpy_simplex_projection(v: np.ndarray) -> np.ndarray:
    x = cp.Variable(v.size)
    problem = cp.Problem(cp.Minimize(cp.sum_squares(x - v)), [x >= 0, cp.sum(x) == 1])
    problem.solve(solver=cp.OSQP, eps_abs=1e-12, eps_rel=1e-12, polish=True, max_iter=200000)
    return np.asarray(x.value)


@pytest.mark.parametrize("k", [2, 3, 5])
def test_simplex_projection_matches_cvxpy(k: int) -> None:
    cases = [RNG.normal(scale=s, size=k) for s in (0.1, 1.0, 5.0) for _ in range(5)]
    cases += [np.eye(k)[0], np.full(k, 1.0 / k), np.zeros(k), np.full(k, 7.0)]
    for v in cases:
        np.testing.assert_allclose(project_to_simplex(v), cvxpy_simplex_projection(v), atol=1e-6)
    batch = np.stack(cases)
    np.testing.assert_allclose(
        project_to_simplex(batch), np.stack([project_to_simplex(v) for v in cases]), atol=1e-12
    )


def test_delta_perturbation_is_seeded_feasible_and_within_delta() -> None:
    p = np.array([0.6, 0.2, 0.2])
    for delta in DELTAS:
        moved = perturb(p, delta, "item-1")
        assert moved.sum() == pytest.approx(1.0) and (moved >= 0).all()
        assert np.linalg.norm(moved - p) <= delta + 1e-12
        np.testing.assert_array_equal(moved, perturb(p, delta, "item-1"))
        # Interior points move by exactly delta along the item's direction.
        expected = p + delta * perturbation_direction("item-1", 3)
        if (expected >= 0).all():
            np.testing.assert_allclose(moved, expected, atol=1e-12)
    assert not np.allclose(perturb(p, 0.1, "item-1"), perturb(p, 0.1, "item-2"))


def test_delta_kl_metrics_use_the_perturbed_target() -> None:
    p, scores = np.array([0.2, 0.8, 0.0]), np.array([-3.0, -1.0, -2.0])
    out = M.item_metrics(p, scores, "abc")
    q = softmax(scores)
    for delta in DELTAS:
        expected = scipy_entropy(perturb(p, delta, "abc"), q)
        assert out[M.delta_metric_name(delta)] == pytest.approx(expected, rel=1e-10)


def test_process_results_reads_lm_eval_multiple_choice_results() -> None:
    doc = {"id": "a", "p": [0.2, 0.8, 0.0]}
    results = [(-3.0, False), (-1.0, True), (-2.0, False)]
    assert M.process_results(doc, results) == M.item_metrics(doc["p"], [-3.0, -1.0, -2.0], "a")
