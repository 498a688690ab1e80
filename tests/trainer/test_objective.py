"""Trainer objective: exact projection vs cvxpy, PGD feasibility and monotonicity, loss by hand."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest
import torch

from distjudge_eval.distributions import project_to_simplex_ball, project_to_simplex_torch
from distjudge_trainer.objective import adversarial_target, hybrid_loss, kl_rows

RNG = np.random.default_rng(7)


def cvxpy_ball_projection(v: np.ndarray, center: np.ndarray, eps: float) -> np.ndarray:
    x = cp.Variable(v.size)
    constraints = [x >= 0, cp.sum(x) == 1, cp.norm(x - center, 2) <= eps]
    # SCS at tight tolerances: Clarabel's interior point stops ~1e-6 short on some cases here.
    cp.Problem(cp.Minimize(cp.sum_squares(x - v)), constraints).solve(
        solver=cp.SCS, eps_abs=1e-13, eps_rel=1e-13, max_iters=1_000_000
    )
    return np.asarray(x.value)


def cases(k: int) -> list[tuple[np.ndarray, np.ndarray, float]]:
    out = []
    for _ in range(12):
        center = RNG.dirichlet(np.ones(k))
        out.append((center + RNG.normal(scale=0.5, size=k), center, float(RNG.uniform(0.01, 0.5))))
    vertex = np.eye(k)[0]
    out += [
        (vertex + RNG.normal(scale=0.3, size=k), vertex, 0.2),  # p on a vertex
        (RNG.normal(size=k), RNG.dirichlet(np.ones(k)), 0.0),  # eps = 0
        (RNG.normal(size=k), RNG.dirichlet(np.ones(k)), 10.0),  # eps large: plain simplex
        (np.full(k, 0.3), np.full(k, 1.0 / k), 0.1),  # ties
        (np.full(k, 1.0 / k), np.full(k, 1.0 / k), 0.1),  # v = center
    ]
    return out


@pytest.mark.parametrize("k", [2, 3, 5])
def test_ball_projection_matches_cvxpy(k: int) -> None:
    data = cases(k)
    v = torch.tensor(np.stack([c[0] for c in data]), dtype=torch.float64)
    center = torch.tensor(np.stack([c[1] for c in data]), dtype=torch.float64)
    eps = torch.tensor([c[2] for c in data], dtype=torch.float64)
    got = project_to_simplex_ball(v, center, eps).numpy()
    for row, (vv, cc, ee) in enumerate(data):
        expected = cc if ee == 0 else cvxpy_ball_projection(vv, cc, ee)
        np.testing.assert_allclose(got[row], expected, atol=1e-6, err_msg=f"case {row}")


def test_torch_simplex_projection_agrees_with_numpy() -> None:
    from distjudge_eval.distributions import project_to_simplex

    v = RNG.normal(size=(50, 4))
    np.testing.assert_allclose(
        project_to_simplex_torch(torch.tensor(v)).numpy(), project_to_simplex(v), atol=1e-12
    )


def test_pgd_stays_feasible_and_never_lowers_kl() -> None:
    for _ in range(30):
        k = int(RNG.integers(2, 6))
        p = torch.tensor(RNG.dirichlet(np.ones(k) * 0.5, size=4))
        p[0] = torch.nn.functional.one_hot(torch.tensor(0), k).double()  # a vertex
        log_q = torch.log_softmax(torch.tensor(RNG.normal(size=(4, k))), -1)
        eps = float(RNG.uniform(0.05, 0.3))
        previous = kl_rows(p, log_q)
        for steps in range(1, 6):
            adv = adversarial_target(p, log_q, eps, steps=steps, step_size=0.05)
            assert torch.all(adv >= -1e-12) and torch.allclose(
                adv.sum(-1), torch.ones(4, dtype=adv.dtype)
            )
            assert torch.all(torch.linalg.vector_norm(adv - p, dim=-1) <= eps + 1e-9)
            current = kl_rows(adv, log_q)
            assert torch.all(current >= previous - 1e-9)
            previous = current


def test_pgd_is_a_no_op_without_a_ball() -> None:
    p = torch.tensor([[0.5, 0.5, 0.0]], dtype=torch.float64)
    log_q = torch.log(torch.tensor([[0.2, 0.3, 0.5]], dtype=torch.float64))
    assert torch.equal(adversarial_target(p, log_q, 0.0, 5, 0.05), p)


def hand_loss(scores, p, target, alpha, eps, steps=5, step=0.05) -> float:
    """The objective written out with numpy loops, PGD included, for one small batch."""
    total_kl, total_ce = 0.0, 0.0
    for s, pp, r in zip(scores, p, target):
        q = np.exp(s - np.logaddexp.reduce(s))
        adv = pp.copy()
        for _ in range(steps if eps > 0 else 0):
            grad = np.log(np.maximum(adv, 1e-12)) - np.log(q) + 1
            v = adv + step * grad
            adv = cvxpy_ball_projection(v, pp, eps)
        total_kl += sum(a * (np.log(a) - np.log(qq)) for a, qq in zip(adv, q) if a > 1e-15)
        total_ce += -sum(rr * np.log(qq) for rr, qq in zip(r, q))
    n = len(scores)
    return alpha * total_kl / n + (1 - alpha) * total_ce / n


@pytest.mark.parametrize(("alpha", "eps"), [(0.8, 0.25), (0.0, 0.0), (1.0, 0.0), (0.5, 0.1)])
def test_loss_equals_hand_computation(alpha: float, eps: float) -> None:
    scores = np.array([[-1.0, -2.0, -0.5], [-0.3, -3.0, -1.2]])
    p = np.array([[0.6, 0.0, 0.4], [0.2, 0.4, 0.4]])
    target = np.array([[0.0, 0.0, 1.0], [0.5, 0.5, 0.0]])
    parts = hybrid_loss(
        torch.tensor(scores), torch.tensor(p), torch.tensor(target), alpha=alpha, epsilon=eps
    )
    assert float(parts.loss) == pytest.approx(hand_loss(scores, p, target, alpha, eps), abs=1e-6)
    q = torch.softmax(torch.tensor(scores), -1)
    assert float(parts.acc) == pytest.approx((1.0 + 0.5) / 2)  # argmax q = [2, 0]
    assert float(parts.kl) == pytest.approx(float(kl_rows(torch.tensor(p), q.log()).mean()))


def test_loss_gradient_flows_to_scores_only_through_q() -> None:
    scores = torch.tensor([[-1.0, -2.0, -0.5]], requires_grad=True)
    p = torch.tensor([[0.6, 0.0, 0.4]])
    parts = hybrid_loss(scores, p, torch.tensor([[1.0, 0.0, 0.0]]), alpha=0.8, epsilon=0.25)
    parts.loss.backward()
    assert scores.grad is not None and torch.isfinite(scores.grad).all()
    with pytest.raises(ValueError, match="alpha"):
        hybrid_loss(scores, p, p, alpha=1.5, epsilon=0.0)


NEG_INF = float("-inf")


@pytest.mark.parametrize(("alpha", "eps"), [(0.0, 0.0), (1.0, 0.0), (0.8, 0.25), (1.0, 0.25)])
def test_a_label_scored_minus_inf_keeps_loss_and_gradients_finite(alpha: float, eps: float) -> None:
    """q_k = 0 where neither p nor the plurality r puts weight: CE used to be 0·(−∞) = NaN."""
    scores = torch.tensor([[-1.0, NEG_INF, -0.5], [NEG_INF, -0.3, -2.0]], requires_grad=True)
    p = torch.tensor([[0.6, 0.0, 0.4], [0.0, 0.7, 0.3]])
    target = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    parts = hybrid_loss(scores, p, target, alpha=alpha, epsilon=eps)
    for name in ("loss", "kl", "kl_adv", "ce"):
        assert torch.isfinite(getattr(parts, name)), name
    parts.loss.backward()
    assert torch.isfinite(scores.grad).all()
    finite = torch.isfinite(scores.detach())
    # the −inf label has zero probability and gets no gradient; the others match a reference
    # computed on the finite labels alone (q_k = 0 changes nothing else)
    assert (scores.grad[~finite] == 0).all()
    if eps == 0:
        ref_scores = torch.tensor([[-1.0, -0.5], [-0.3, -2.0]], requires_grad=True)
        ref_p = torch.tensor([[0.6, 0.4], [0.7, 0.3]])
        ref_t = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
        ref = hybrid_loss(ref_scores, ref_p, ref_t, alpha=alpha, epsilon=0.0)
        ref.loss.backward()
        assert float(parts.loss.detach()) == pytest.approx(float(ref.loss.detach()), abs=1e-6)
        torch.testing.assert_close(scores.grad[finite], ref_scores.grad.flatten())


def test_minus_inf_where_people_put_mass_is_finite_at_the_floor() -> None:
    """p_k > 0 (or r_k > 0) on a label with q_k = 0: read as q_k = 1e-12, not +∞ or NaN."""
    scores = torch.tensor([[NEG_INF, 0.0, 0.0]], requires_grad=True)
    p = torch.tensor([[0.5, 0.5, 0.0]])
    target = torch.tensor([[0.5, 0.5, 0.0]])
    parts = hybrid_loss(scores, p, target, alpha=0.5, epsilon=0.25)
    assert torch.isfinite(parts.loss)
    log_floor = float(np.log(1e-12))
    ce = -(0.5 * log_floor + 0.5 * np.log(0.5))
    assert float(parts.ce.detach()) == pytest.approx(ce, rel=1e-6)
    assert float(parts.kl.detach()) == pytest.approx(0.5 * (np.log(0.5) - log_floor), rel=1e-6)
    parts.loss.backward()
    assert torch.isfinite(scores.grad).all()
    p_adv = adversarial_target(p, torch.log_softmax(scores.detach(), -1), 0.25, 5, 0.05)
    assert torch.isfinite(p_adv).all() and float(p_adv.sum()) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("scale", [1e4, -1e4])
def test_extreme_finite_scores_are_used_as_they_are(scale: float) -> None:
    """±1e4 score gaps: log q = −2e4 is finite and used as is (no floor), loss and gradients
    finite, and the loss equals the float64 hand computation."""
    scores = torch.tensor([[scale, -scale, 0.0], [0.0, scale, -scale]], requires_grad=True)
    p = np.array([[0.6, 0.0, 0.4], [0.2, 0.4, 0.4]])
    target = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    for alpha, eps in [(0.8, 0.25), (0.0, 0.0), (1.0, 0.0)]:
        scores.grad = None
        parts = hybrid_loss(scores, torch.tensor(p), torch.tensor(target), alpha=alpha, epsilon=eps)
        assert torch.isfinite(parts.loss)
        if alpha > 0:  # q puts e^-1e4 where p puts 0.4: a huge but finite KL
            assert float(parts.loss.detach()) > 100
        parts.loss.backward()
        assert torch.isfinite(scores.grad).all()
        if eps == 0:
            s = scores.detach().double().numpy()
            log_q = s - np.logaddexp.reduce(s, axis=-1, keepdims=True)
            kl = np.where(p > 0, p * (np.log(np.maximum(p, 1e-300)) - log_q), 0).sum(-1).mean()
            ce = -np.where(target > 0, target * log_q, 0).sum(-1).mean()
            assert float(parts.loss.detach()) == pytest.approx(
                alpha * kl + (1 - alpha) * ce, rel=1e-5
            )
