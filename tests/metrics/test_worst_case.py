"""kl_worst against brute force: dense samples of the feasible set's extreme points and SLSQP."""

from __future__ import annotations

import itertools

import cvxpy as cp
import numpy as np
import pytest
from scipy.optimize import minimize

from distjudge_eval.distributions import project_to_simplex
from distjudge_eval.worst_case import TOL, max_linear, project_simplex_box, worst_case_kl

RNG = np.random.default_rng(7)


def kl(x: np.ndarray, lq: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > 0, x * (np.log(x) - lq), 0.0).sum(-1)


def sphere_face_samples(p: np.ndarray, delta: float, n: int) -> np.ndarray:
    """Points of simplex∩ball on the sphere within every face, plus vertices in the ball.

    KL is convex, so its maximum is at such an extreme point; this samples all of them.
    """
    k = p.size
    out = [np.eye(k)[j] for j in range(k) if np.linalg.norm(np.eye(k)[j] - p) <= delta]
    for size in range(2, k + 1):
        for support in itertools.combinations(range(k), size):
            s = list(support)
            c = np.zeros(k)
            c[s] = p[s] + (1.0 - p[s].sum()) / size  # p projected onto the face's plane
            rho2 = delta**2 - np.sum((p - c) ** 2)
            if rho2 <= 0:
                continue
            v = np.zeros((n, k))
            v[:, s] = RNG.standard_normal((n, size))
            v[:, s] -= v[:, s].mean(1, keepdims=True)
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            x = c + np.sqrt(rho2) * v
            out.extend(x[(x >= 0).all(1)])
    return np.array(out)


def slsqp_best(
    p: np.ndarray, lq: np.ndarray, delta: float, starts: int, seeds: np.ndarray | None = None
) -> float:
    """Best KL from SLSQP runs started at random feasible points and at the given seeds."""
    k = p.size
    best = -np.inf
    cons = [
        {"type": "eq", "fun": lambda x: x.sum() - 1.0},
        {"type": "ineq", "fun": lambda x: delta**2 - np.sum((x - p) ** 2)},
    ]
    x0s = []
    for _ in range(starts):
        u = RNG.standard_normal(k)
        x0s.append(
            project_to_simplex(p + delta * RNG.uniform() * (u - u.mean()) / np.linalg.norm(u))
        )
    x0s.extend([] if seeds is None else list(seeds))
    for x0 in x0s:
        res = minimize(
            lambda x: -kl(np.clip(x, 0, None), lq), x0, method="SLSQP", bounds=[(0, 1)] * k,
            constraints=cons, options={"ftol": 1e-15, "maxiter": 500},
        )  # fmt: skip
        x = project_to_simplex(np.clip(res.x, 0, None))
        d = np.linalg.norm(x - p)
        if d > delta:  # pull an infeasible end point back into the ball
            x = p + (x - p) * delta / d
        best = max(best, float(kl(x, lq)), float(kl(x0, lq)))
    return best


def brute_force(p: np.ndarray, lq: np.ndarray, delta: float, n_face: int) -> float:
    """Dense extreme-point samples, inner points, then SLSQP from random and the best samples."""
    k = p.size
    samples = sphere_face_samples(p, delta, n_face)
    radius = delta * RNG.uniform(size=(2000, 1))
    inner = project_to_simplex(p + radius * RNG.normal(size=(2000, k)))
    inner = inner[np.linalg.norm(inner - p, axis=1) <= delta]
    pool = np.concatenate([samples, inner])
    top = pool[np.argsort(kl(pool, lq))[-6:]]
    return max(kl(pool, lq).max(), slsqp_best(p, lq, delta, starts=8, seeds=top))


def random_problem(k: int) -> tuple[np.ndarray, np.ndarray, float]:
    if RNG.uniform() < 0.5:  # vote-like p with zeros, as in most benchmarks
        votes = RNG.integers(0, 4, size=k)
        votes[RNG.integers(k)] += 1
        p = votes / votes.sum()
    else:
        p = RNG.dirichlet(np.ones(k))
    lq = RNG.normal(scale=2.0, size=k)
    return p, lq - np.logaddexp.reduce(lq), float(RNG.uniform(0.02, 0.6))


@pytest.mark.parametrize("k", [2, 3, 4, 5])
def test_worst_case_bounds_every_feasible_point_and_matches_the_best(k: int) -> None:
    for _ in range(12):
        p, lq, delta = random_problem(k)
        res = worst_case_kl(p, lq, delta)
        value, x = float(res.value[0]), res.argmax[0]
        # The reported point is feasible and attains the value.
        assert x.sum() == pytest.approx(1.0) and (x >= -1e-15).all()
        assert np.linalg.norm(x - p) <= delta + 1e-12
        assert kl(x, lq) == pytest.approx(value, abs=1e-9)
        best = brute_force(p, lq, delta, 4000 if k <= 3 else 1500)
        # Certified: the true maximum lies in [value, value + TOL].
        assert value >= best - TOL
        assert value <= best + 1e-6


@pytest.mark.parametrize("k", [7, 10])
def test_worst_case_for_larger_label_sets(k: int) -> None:
    for _ in range(3):
        p, lq, delta = random_problem(k)
        res = worst_case_kl(p, lq, delta)
        value = float(res.value[0])
        assert res.gap[0] == 0.0  # finished within its node budget
        best = brute_force(p, lq, delta, 60)
        assert value >= best - TOL
        assert value <= best + 1e-6


def test_worst_case_rises_with_delta_and_starts_at_kl() -> None:
    deltas = np.linspace(0.0, 0.6, 13)
    for k in (3, 5):
        p, lq, _ = random_problem(k)
        values = worst_case_kl(p, lq, deltas).value
        assert values[0] == pytest.approx(kl(p, lq), abs=1e-12)
        assert (np.diff(values) >= -1e-9).all()
    # A one-hot p is a vertex, KL's maximum over a small ball: moving away only lowers KL.
    e = np.array([1.0, 0.0, 0.0])
    lq = np.log([0.42, 0.30, 0.28])
    np.testing.assert_allclose(worst_case_kl(e, lq, [0.05, 0.25]).value, -lq[0])


def test_two_labels_closed_form() -> None:
    # K = 2: the feasible set is a segment; the far end towards the smaller q wins.
    p, lq = np.array([0.5, 0.5]), np.log([0.9, 0.1])
    x1 = 0.5 - 0.2 / np.sqrt(2)
    expected = x1 * (np.log(x1) - lq[0]) + (1 - x1) * (np.log(1 - x1) - lq[1])
    assert worst_case_kl(p, lq, 0.2).value[0] == pytest.approx(expected, rel=1e-12)


def test_box_projection_and_linear_step_match_cvxpy() -> None:
    for k in (3, 5):
        for _ in range(10):
            p = RNG.dirichlet(np.ones(k))
            lo = np.clip(p - RNG.uniform(0, 0.3, k), 0, 1)
            hi = np.clip(p + RNG.uniform(0, 0.3, k), 0, 1)
            v = RNG.normal(size=k)
            x = cp.Variable(k)
            box = [cp.sum(x) == 1, x >= lo, x <= hi]
            cp.Problem(cp.Minimize(cp.sum_squares(x - v)), box).solve(solver=cp.CLARABEL)
            got = project_simplex_box(v[None], lo[None], hi[None])[0]
            np.testing.assert_allclose(got, x.value, atol=1e-5)
            a, r = RNG.normal(size=k), RNG.uniform(0.01, 0.3)
            ball = cp.sum_squares(x - p) <= r * r
            cp.Problem(cp.Maximize(a @ x), [*box, ball]).solve(solver=cp.CLARABEL)
            _, ub, _, _ = max_linear(a[None], p[None], np.array([r * r]), lo[None], hi[None])
            assert ub[0] >= a @ x.value - 1e-6
            assert ub[0] == pytest.approx(a @ x.value, abs=1e-5)
