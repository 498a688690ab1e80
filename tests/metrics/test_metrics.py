"""Every metric against an independent computation (scipy, cvxpy, brute-force loops)."""

from __future__ import annotations

import itertools

import cvxpy as cp
import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.special import softmax
from scipy.stats import entropy as scipy_entropy

from distjudge_eval import metrics as M
from distjudge_eval.distributions import (
    DELTAS,
    N_DIRECTIONS,
    perturb,
    perturbation_directions,
    plurality_target,
    project_to_simplex,
    votes_to_p,
)
from distjudge_eval.pairwise import swap_distribution, swap_permutation

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
        assert out["abs_entropy_gap"] == pytest.approx(abs(scipy_entropy(q) - scipy_entropy(p)))
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
    tight = {f"tol_{k}": 1e-12 for k in ("gap_abs", "gap_rel", "feas")}
    problem.solve(solver=cp.CLARABEL, **tight)  # interior point, no deprecated polish flag
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


def test_perturbations_are_seeded_isotropic_feasible_and_within_delta() -> None:
    p = np.array([0.6, 0.2, 0.2])
    u = perturbation_directions("item-1", 3)
    assert u.shape == (N_DIRECTIONS, 3)
    np.testing.assert_allclose(u.sum(1), 0.0, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(u, axis=1), 1.0)
    np.testing.assert_array_equal(u, perturbation_directions("item-1", 3))
    assert not np.allclose(u, perturbation_directions("item-2", 3))
    for delta in DELTAS:
        moved = perturb(p, delta, "item-1")
        np.testing.assert_allclose(moved.sum(1), 1.0)
        assert (moved >= 0).all()
        assert (np.linalg.norm(moved - p, axis=1) <= delta + 1e-12).all()
        # Rows that stay inside the simplex move by exactly delta along their direction.
        raw = p + delta * u
        inside = (raw >= 0).all(1)
        np.testing.assert_allclose(moved[inside], raw[inside], atol=1e-12)


def test_expected_kl_is_the_mean_over_projected_perturbations() -> None:
    p, scores = np.array([0.2, 0.8, 0.0]), np.array([-3.0, -1.0, -2.0])
    out = M.item_metrics(p, scores, "abc")
    q = softmax(scores)
    u = perturbation_directions("abc", 3)
    for delta in DELTAS:
        # Independent: cvxpy projection of each p + δu_i, scipy KL, plain mean.
        # (solver output clipped at 0: OSQP returns -1e-13 for exact zeros)
        proj = [np.clip(cvxpy_simplex_projection(p + delta * ui), 0, None) for ui in u]
        expected = np.mean([scipy_entropy(x, q) for x in proj])
        assert out[M.expected_metric_name(delta)] == pytest.approx(expected, rel=1e-5)


def test_swapped_order_permutes_the_directions_with_the_labels() -> None:
    """An order-blind judge (q permuted with the labels) scores the same in both orders."""
    for k in (2, 3):
        for i in range(20):
            p = RNG.dirichlet(np.ones(k))
            scores = RNG.normal(size=k)
            shown_p = swap_distribution(p)
            shown_scores = [scores[j] for j in swap_permutation(k)]
            doc = {"id": f"pair{i}", "p": list(p)}
            swapped = {"id": f"pair{i}", "p": shown_p, "order": "swapped"}
            a = M.process_results(doc, [(s, False) for s in scores])
            b = M.process_results(swapped, [(s, False) for s in shown_scores])
            for name in (*map(M.expected_metric_name, DELTAS), *map(M.worst_metric_name, DELTAS)):
                assert b[name] == pytest.approx(a[name], rel=1e-9, abs=1e-9), name
            if k == 2:  # 64 directions ±v: flipping may give the same multiset
                continue
            # Without the permutation the directions differ, and so does kl_exp.
            plain = M.item_metrics(shown_p, shown_scores, f"pair{i}")
            assert plain[M.expected_metric_name(0.25)] != pytest.approx(
                a[M.expected_metric_name(0.25)], rel=1e-6
            )
    with pytest.raises(ValueError, match="slot order"):
        M.process_results({"id": "x", "p": [0.5, 0.5], "order": "sideways"}, [0.0, 0.0])


def test_worst_case_metrics_bound_every_perturbation_and_rise_with_delta() -> None:
    for i in range(30):
        p, scores = random_case(3)
        out = M.item_metrics(p, scores, f"w{i}")
        worst = [out[M.worst_metric_name(d)] for d in DELTAS]
        assert worst[0] >= out["kl"] - 1e-12
        assert all(b >= a - 1e-9 for a, b in itertools.pairwise(worst))
        for d, w in zip(DELTAS, worst):
            assert w >= out[M.expected_metric_name(d)] - 1e-12


def test_registry_directions_and_lm_eval_metric_list() -> None:
    names = [m.name for m in M.METRICS]
    assert len(names) == len(set(names))
    for d in DELTAS:
        assert M.worst_metric_name(d) in names and M.expected_metric_name(d) in names
    assert not any(n.startswith("kl_delta") for n in names)
    assert M.METRIC_BY_NAME["entropy_gap"].higher_is_better is None
    assert M.METRIC_BY_NAME["abs_entropy_gap"].higher_is_better is False
    out = M.item_metrics([0.5, 0.5, 0.0], [-1.0, -2.0, -3.0], "x")
    for readout, dropped in (("logprob", "parse_fail"), ("verbalized", "label_mass")):
        listed = {e["metric"] for e in M.metric_list(readout)}
        assert listed == set(names) - {dropped}
        assert listed - {"parse_fail", "truncated"} <= set(out)  # the task adds truncated


def test_temperature_divides_scores_and_leaves_label_mass() -> None:
    p, scores = np.array([0.5, 0.3, 0.2]), np.array([-1.0, -2.5, -4.0])
    out = M.item_metrics(p, scores, "t", temperature=2.5)
    q = softmax(scores / 2.5)
    assert out["kl"] == pytest.approx(scipy_entropy(p, q), rel=1e-12)
    assert out["label_mass"] == pytest.approx(np.exp(scores).sum())
    doc = {"id": "t", "p": list(p)}
    assert M.process_results(doc, [(s, False) for s in scores], temperature=2.5) == out
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="temperature"):
            M.item_metrics(p, scores, "t", temperature=bad)


def test_metrics_from_a_stored_sample_row() -> None:
    doc = {"id": "s1", "p": [0.2, 0.8, 0.0]}
    resps = [["-3.0", "False"], ["-1.0", "True"], ["-2.0", "False"]]
    row = {"doc": doc, "filtered_resps": resps}
    assert M.metrics_from_sample(row) == M.item_metrics(doc["p"], [-3.0, -1.0, -2.0], "s1")
    verbal = {
        "doc": doc,
        "filtered_resps": ["<p>..."],
        "ece": {"q": [0.1, 0.6, 0.3], "p": doc["p"]},
    }
    out = M.metrics_from_sample(verbal)
    assert "label_mass" not in out
    assert out["kl"] == pytest.approx(scipy_entropy(doc["p"], [0.1, 0.6, 0.3]))


def test_process_results_reads_lm_eval_multiple_choice_results() -> None:
    doc = {"id": "a", "p": [0.2, 0.8, 0.0]}
    results = [(-3.0, False), (-1.0, True), (-2.0, False)]
    assert M.process_results(doc, results) == M.item_metrics(doc["p"], [-3.0, -1.0, -2.0], "a")


@pytest.mark.parametrize("p", [[60, 40], [0.0, 0.0], [1.0, 1.0], [-0.5, 1.5], [float("nan"), 1.0]])
def test_p_that_is_not_a_distribution_is_refused(p: list[float]) -> None:
    from distjudge_eval.errors import UserError
    from distjudge_eval.metrics import process_results

    with pytest.raises(UserError, match=r"item x: p = .* is not a probability distribution"):
        process_results({"p": p, "id": "x"}, [(-1.0, False), (-2.0, False)])


def test_score_rows_matches_independent_per_item_values_with_mixed_label_counts() -> None:
    """The one rescoring function the results scripts share: KL against scipy, the worst case
    against a solve per row, accuracy and ECE against hand loops, on 3- and 5-label rows."""
    from distjudge_eval.worst_case import worst_case_kl

    rng = np.random.default_rng(4)
    p_rows = [rng.dirichlet(np.ones(k)) for k in (3, 5, 3, 5, 3)]
    p_rows[0] = np.array([0.6, 0.4, 0.0])  # a zero in p and a tie-free plurality
    logits = [rng.normal(size=len(p)) * 2 for p in p_rows]
    log_q = [lq - np.log(np.exp(lq).sum()) for lq in logits]
    out = M.score_rows(p_rows, log_q, delta=0.2)
    q = [np.exp(lq) for lq in log_q]
    assert out["kl"] == pytest.approx([scipy_entropy(p, qi) for p, qi in zip(p_rows, q)])
    single = [worst_case_kl(p[None], lq[None], 0.2).value[0] for p, lq in zip(p_rows, log_q)]
    assert out["worst"] == pytest.approx(single, abs=1e-9)
    hits = [float(np.argmax(qi) == np.argmax(p)) for p, qi in zip(p_rows, q)]
    assert out["acc"].tolist() == hits and out["conf"] == pytest.approx([qi.max() for qi in q])
    bins: dict[int, list[int]] = {}
    for i, c in enumerate(out["conf"]):
        bins.setdefault(min(int(c * 15), 14), []).append(i)
    ece = sum(
        len(ix) * abs(np.mean([hits[i] for i in ix]) - np.mean([out["conf"][i] for i in ix]))
        for ix in bins.values()
    ) / len(hits)
    assert out["ece"] == pytest.approx(ece)
