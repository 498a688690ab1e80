"""Worst-case KL within δ of the human distribution, solved to a certified tolerance.

    kl_worst(p, q, δ) = max { KL(x‖q) : x ∈ simplex, ‖x − p‖₂ ≤ δ }.

This is what the trainer's PGD adversary approximates, computed here exactly enough to report.
KL(x‖q) = Σ_k φ_k(x_k) with φ_k(t) = t log t − t log q_k is convex and separable, so maximising it
is a (non-convex) convex-maximisation problem; a local ascent can stop at a local maximum. We use
spatial branch and bound on boxes, which is exact up to a stated gap for any K:

* **Upper bound on a box** B = Π_k [l_k, u_k]. On [l_k, u_k] the concave envelope of the convex φ_k
  is its secant s_k(t) = a_k t + b_k, so max_{S∩B} KL ≤ max_{x ∈ simplex∩B∩ball} a·x + Σ b. That
  linear maximisation is bounded through its Lagrangian in the ball constraint: for any t > 0,
  with x(t) = Π_{simplex∩B}(p + t a) (exact sort/breakpoint projection),

      max_{simplex∩B∩ball} a·x ≤ a·x(t) + (δ² − ‖x(t) − p‖²) / (2t)

  (weak duality, valid for every t; tight at the t where ‖x(t) − p‖ = δ, which we find by a
  safeguarded root search on the piecewise-quadratic ‖x(t) − p‖²).
* **Lower bound**: every x(t), pulled back onto the ball along the segment to p (p is feasible, so
  the result stays in the simplex), is a feasible point; its KL is attained. A few steps of
  Frank–Wolfe ascent (maximise the linearised KL over simplex∩ball, monotone for convex f) from
  K + 1 starts seed it.
* Boxes whose upper bound is within ``tol`` of the best attained value are discarded; the others
  are split on the coordinate whose secant gap at the box's linear maximiser is largest.

The returned value is the best attained KL (a real p̃ exists with that KL), and the search stops
only when no box can beat it by more than ``tol`` (1e-7 nats by default), so the true maximum lies
in [value, value + tol]. If the node budget runs out first, the remaining upper bound is returned
instead (still a valid bound, never an underestimate) and ``gap`` says by how much.
K = 2 has a closed form (the feasible set is a segment; a convex function peaks at an end).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

LOG_Q_FLOOR = float(np.log(1e-12))  # the same floor as metrics.kl_divergence
TOL = 1e-7
MAX_ROUNDS = 400
ENUMERATE_UP_TO_K = 4  # 3^K KKT patterns; beyond, a safeguarded root search
ZOOM = 16.0
_T_MAX = 1e12
_NEG = -1e3  # stands in for ∇KL = log 0 = −∞ at a zero coordinate in Frank–Wolfe steps


@dataclass
class WorstCase:
    """Per problem: the certified value, the p̃ that attains it, and the remaining gap."""

    value: np.ndarray
    argmax: np.ndarray
    gap: np.ndarray


def _phi(x: np.ndarray, lq: np.ndarray) -> np.ndarray:
    """t log t − t log q elementwise, 0 at t = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = x * (np.log(x) - lq)
    return np.where(x > 0, out, 0.0)


def _kl_rows(x: np.ndarray, lq: np.ndarray) -> np.ndarray:
    return _phi(x, lq).sum(-1)


def project_simplex_box(v: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Exact Euclidean projection of rows of v onto {Σx = 1, lo ≤ x ≤ hi} (must be non-empty).

    x = clip(v − ν, lo, hi) with ν solving a piecewise-linear monotone equation; it is exact
    between the two breakpoints that bracket the sum 1.
    """
    n, k = v.shape
    bp = np.concatenate([v - lo, v - hi], axis=1)  # (n, 2k) breakpoints of S(ν)
    bp.sort(axis=1)
    s = np.clip(v[:, None, :] - bp[:, :, None], lo[:, None, :], hi[:, None, :]).sum(-1)
    # s is non-increasing along the sorted breakpoints: s[0] = Σhi ≥ 1, s[-1] = Σlo ≤ 1.
    j = np.clip((s >= 1.0).sum(1) - 1, 0, 2 * k - 2)
    rows = np.arange(n)
    b0, b1, s0, s1 = bp[rows, j], bp[rows, j + 1], s[rows, j], s[rows, j + 1]
    drop = s0 - s1
    frac = np.where(drop > 0, (s0 - 1.0) / np.where(drop > 0, drop, 1.0), 0.0)
    nu = b0 + np.clip(frac, 0.0, 1.0) * (b1 - b0)
    return np.clip(v - nu[:, None], lo, hi)


def _dist2(x: np.ndarray, p: np.ndarray) -> np.ndarray:
    return ((x - p) ** 2).sum(-1)


def _box_lp(a: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """argmax a·x over {Σx = 1, lo ≤ x ≤ hi}: fill the largest a_k first (greedy is exact)."""
    order = np.argsort(-a, axis=1, kind="stable")
    lo_s = np.take_along_axis(lo, order, 1)
    cap = np.take_along_axis(hi, order, 1) - lo_s
    left = 1.0 - lo.sum(1, keepdims=True)
    before = np.cumsum(cap, axis=1) - cap
    x_s = lo_s + np.clip(left - before, 0.0, cap)
    out = np.empty_like(x_s)
    np.put_along_axis(out, order, x_s, 1)
    return out


@functools.lru_cache(maxsize=8)
def _active_sets(k: int) -> np.ndarray:
    """Every (at lo | at hi | free) pattern of k coordinates with at least two free: (M, k)."""
    pats = np.array(list(itertools.product((0, 1, 2), repeat=k)), dtype=np.int8)
    return pats[(pats == 2).sum(1) >= 2]


def _t_by_active_sets(
    a: np.ndarray, p: np.ndarray, r2: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> np.ndarray:
    """The ball multiplier t of max a·x over simplex∩box∩ball by enumerating KKT patterns.

    With the coordinates at lo / at hi / free fixed, x_F = p_F + t·u − c (u = a_F − mean_F a, c
    from Σx = 1) and ‖x − p‖² = t²Σu² + |F|c² + fixed part, so t is explicit; the pattern whose
    x and unclipped values agree with it is the KKT point. NaN where none does (callers then
    search numerically). Exact and iteration-free for small K (3^K patterns).
    """
    pats = _active_sets(a.shape[1])[None]  # (1, M, k)
    free, at_hi = pats == 2, pats == 1
    a_, p_, lo_, hi_ = a[:, None], p[:, None], lo[:, None], hi[:, None]
    fv = np.where(at_hi, hi_, lo_)
    nf = free.sum(-1)
    c = (np.where(free, p_, fv).sum(-1) - 1.0) / nf
    mean_a = np.where(free, a_, 0.0).sum(-1) / nf
    u = a_ - mean_a[..., None]
    uu = np.where(free, u * u, 0.0).sum(-1)
    rest = r2[:, None] - nf * c * c - np.where(free, 0.0, (fv - p_) ** 2).sum(-1)
    t = np.sqrt(np.maximum(rest, 0.0) / np.where(uu > 0, uu, 1.0))
    z = p_ + t[..., None] * u - c[..., None]  # unclipped p + t·a − ν
    eps = 1e-10 * (1.0 + t[..., None] * np.abs(a_))
    ok = (uu > 0) & (rest >= 0) & np.isfinite(t)
    ok &= np.where(free, (z >= lo_ - eps) & (z <= hi_ + eps), True).all(-1)
    ok &= np.where(at_hi, z >= hi_ - eps, True).all(-1) & np.where(
        pats == 0, z <= lo_ + eps, True
    ).all(-1)
    value = np.where(ok, (a_ * np.where(free, z, fv)).sum(-1), -np.inf)
    best = value.argmax(1)
    rows = np.arange(len(a))
    return np.where(ok[rows, best], t[rows, best], np.nan)


def max_linear(
    a: np.ndarray,
    p: np.ndarray,
    r2: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    t0: np.ndarray | None = None,
    iters: int = 40,
    tol: float = TOL,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For rows: (x, ub, feasible, t) for max a·x over simplex ∩ [lo, hi] ∩ ball(p, √r2).

    x(t) = Π_{simplex∩box}(p + t a) maximises a·x − ‖x − p‖²/(2t) there, so for every t > 0
    ``ub`` = a·x(t) + (r2 − ‖x(t) − p‖²)/(2t) bounds the maximum from above whether or not the
    search for ‖x(t) − p‖² = r2 has converged. ``feasible`` is False where the set is empty;
    ``t`` can warm-start a nearby problem.
    """
    n = len(a)
    # Cheap emptiness tests (box misses the ball, or the simplex); a box that passes but is
    # still empty only costs a loose bound: ``ub`` stays valid for any t.
    near = np.clip(p, lo, hi)
    feasible = (
        (_dist2(near, p) <= r2 * (1 + 1e-12)) & (lo.sum(1) <= 1 + 1e-12) & (hi.sum(1) >= 1 - 1e-12)
    )
    t_lo = np.zeros(n)
    t_hi = np.full(n, _T_MAX)
    x_far = _box_lp(a, lo, hi)
    inside = _dist2(x_far, p) <= r2  # the box-LP optimum is already in the ball
    active = feasible & ~inside
    if a.shape[1] <= ENUMERATE_UP_TO_K and active.any():
        t_exact = np.full(n, np.nan)
        t_exact[active] = _t_by_active_sets(
            a[active], p[active], r2[active], lo[active], hi[active]
        )
        found = np.isfinite(t_exact)
        t0 = np.where(found, t_exact, np.nan if t0 is None else t0)
        active &= ~found  # the KKT pattern gave t exactly: no search
    if t0 is None:
        t0 = np.full(n, np.nan)
    spread = np.sqrt(((a - a.mean(1, keepdims=True)) ** 2).sum(1))
    t0 = np.where(np.isfinite(t0), t0, np.sqrt(r2) / np.where(spread > 0, spread, 1.0))
    t = np.where(inside, _T_MAX, np.clip(t0, 1e-12, _T_MAX / 2))
    x = np.where(inside[:, None], x_far, project_simplex_box(p + t[:, None] * a, lo, hi))
    for _ in range(iters):
        if not active.any():
            break
        idx = np.flatnonzero(active)
        xa, ta, pa, aa, la, ha = x[idx], t[idx], p[idx], a[idx], lo[idx], hi[idx]
        d2 = _dist2(xa, pa)
        ra = r2[idx]
        # Close enough: the bound's slack from an inexact t is |d2 − r2|/(2t) at first order.
        done = np.abs(d2 - ra) <= np.maximum(1e-12 * ra, 0.2 * tol * ta)
        above = d2 > ra
        t_hi[idx] = np.where(above, ta, t_hi[idx])
        t_lo[idx] = np.where(above, t_lo[idx], ta)
        # On the current piece (free set F fixed) x_F = p_F + t·u − c with Σ_F u = 0, so
        # ‖x − p‖² = t²Σu² + |F|c² + (fixed part): its root is explicit.
        free = (xa > la) & (xa < ha)
        nf = free.sum(1)
        nf1 = np.maximum(nf, 1)
        u = np.where(free, aa - (aa * free).sum(1, keepdims=True) / nf1[:, None], 0.0)
        c = np.where(free, pa + ta[:, None] * u - xa, 0.0).sum(1) / nf1
        fixed = np.where(free, 0.0, (xa - pa) ** 2).sum(1)
        uu = (u * u).sum(1)
        rest = ra - nf * c * c - fixed
        root = np.sqrt(np.maximum(rest, 0.0) / np.where(uu > 0, uu, 1.0))
        lo_t, hi_t = t_lo[idx], t_hi[idx]
        ok = (uu > 0) & (rest > 0) & (root > lo_t) & (root < hi_t)
        fallback = np.where(
            hi_t >= _T_MAX,
            lo_t * 4.0,
            np.where(lo_t > 0, np.sqrt(np.maximum(lo_t, 1e-300) * hi_t), hi_t * 0.25),
        )
        new_t = np.where(done, ta, np.where(ok, root, fallback))
        t[idx] = new_t
        step = ~done
        if step.any():
            s = idx[step]
            x[s] = project_simplex_box(p[s] + new_t[step, None] * a[s], lo[s], hi[s])
        active[idx[done]] = False
    d2 = _dist2(x, p)
    ub = (a * x).sum(1) + (r2 - d2) / (2 * t)
    ub = np.where(inside, (a * x_far).sum(1) + np.maximum(r2 - d2, 0.0) / (2 * _T_MAX), ub)
    return x, np.where(feasible, ub, -np.inf), feasible, t


def _onto_ball(x: np.ndarray, p: np.ndarray, r: np.ndarray) -> np.ndarray:
    """x pulled towards p until ‖x − p‖ ≤ r (stays in the simplex: a mix of two of its points)."""
    d = np.sqrt(_dist2(x, p))
    scale = np.where(d > r, r / np.where(d > 0, d, 1.0), 1.0)
    return p + (x - p) * scale[:, None]


def _frank_wolfe_seed(
    p: np.ndarray, lq: np.ndarray, r: np.ndarray, steps: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Best KL over K + 1 Frank–Wolfe ascents on simplex∩ball (each step cannot lower KL).

    Starts: the points of the set furthest towards each vertex, and towards small q.
    """
    n, k = p.shape
    m = k + 1
    pp, ll, rr = np.tile(p, (m, 1)), np.tile(lq, (m, 1)), np.tile(r, m)
    direction = np.concatenate([np.repeat(np.eye(k), n, axis=0), -lq])
    zeros, ones = np.zeros_like(pp), np.ones_like(pp)
    x, _, _, _ = max_linear(direction, pp, rr * rr, zeros, ones)
    x = _onto_ball(x, pp, rr)
    v = _kl_rows(x, ll)
    for _ in range(steps):
        with np.errstate(divide="ignore"):
            grad = np.where(x > 0, np.log(np.where(x > 0, x, 1.0)) + 1.0 - ll, _NEG)
        x_new, _, _, _ = max_linear(grad, pp, rr * rr, zeros, ones)
        x_new = _onto_ball(x_new, pp, rr)
        v_new = _kl_rows(x_new, ll)
        improve = v_new > v
        x = np.where(improve[:, None], x_new, x)
        v = np.where(improve, v_new, v)
    v, x = v.reshape(m, n), x.reshape(m, n, k)
    pick = v.argmax(0)
    return v[pick, np.arange(n)], x[pick, np.arange(n)]


def _secant(lo: np.ndarray, hi: np.ndarray, lq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Slope and intercept of φ_k's secant on [lo_k, hi_k] (its concave envelope there)."""
    w = hi - lo
    f_lo, f_hi = _phi(lo, lq), _phi(hi, lq)
    mid = np.maximum(0.5 * (lo + hi), 1e-300)
    tiny = w <= 1e-14
    slope = np.where(tiny, np.log(mid) + 1.0 - lq, (f_hi - f_lo) / np.where(tiny, 1.0, w))
    return slope, f_lo - slope * lo


def _closed_form_k2(p: np.ndarray, lq: np.ndarray, delta: np.ndarray) -> WorstCase:
    """K = 2: the feasible set is the segment x₁ ∈ [p₁ − δ/√2, p₁ + δ/√2] ∩ [0, 1]."""
    half = delta / np.sqrt(2.0)
    ends = []
    for x1 in (np.clip(p[:, 0] - half, 0.0, 1.0), np.clip(p[:, 0] + half, 0.0, 1.0)):
        ends.append(np.stack([x1, 1.0 - x1], axis=1))
    v0, v1 = _kl_rows(ends[0], lq), _kl_rows(ends[1], lq)
    pick = v1 > v0
    return WorstCase(
        np.where(pick, v1, v0), np.where(pick[:, None], ends[1], ends[0]), np.zeros(len(p))
    )


def worst_case_kl(
    p: np.ndarray,
    log_q: np.ndarray,
    delta: np.ndarray | Sequence[float] | float,
    tol: float = TOL,
    max_rounds: int = MAX_ROUNDS,
) -> WorstCase:
    """max KL(x‖q) over x ∈ simplex with ‖x − p‖₂ ≤ δ, for rows of p and log q (see module doc).

    ``log_q`` is floored at log 1e-12 like :func:`distjudge_eval.metrics.kl_divergence`.
    """
    p = np.atleast_2d(np.asarray(p, dtype=np.float64))
    lq = np.maximum(np.atleast_2d(np.asarray(log_q, dtype=np.float64)), LOG_Q_FLOOR)
    d = np.atleast_1d(np.asarray(delta, dtype=np.float64))
    n = np.broadcast_shapes((p.shape[0],), (lq.shape[0],), d.shape)[0]
    k = p.shape[1]
    p = np.broadcast_to(p, (n, k)).copy()
    lq = np.broadcast_to(lq, (n, k)).copy()
    delta = np.broadcast_to(d, (n,)).copy()
    if np.any(delta < 0):
        raise ValueError("δ must be non-negative")
    if k == 1:
        return WorstCase(np.zeros(n), np.ones((n, 1)), np.zeros(n))
    if k == 2:
        return _closed_form_k2(p, lq, delta)
    best_v, best_x = _frank_wolfe_seed(p, lq, delta)
    # Boxes: the ball's bounding box within [0, 1]; owner maps a box to its problem.
    lo = np.clip(p - delta[:, None], 0.0, 1.0)
    hi = np.clip(p + delta[:, None], 0.0, 1.0)
    owner = np.arange(n)
    t_warm = None
    open_ub = np.full(n, -np.inf)
    for _ in range(max_rounds):
        if owner.size == 0:
            break
        a, b = _secant(lo, hi, lq[owner])
        po, r = p[owner], delta[owner]
        x, ub_lin, feasible, t = max_linear(a, po, r * r, lo, hi, t_warm)
        ub = ub_lin + b.sum(1)
        cand = _onto_ball(x, po, r)
        val = np.where(feasible, _kl_rows(cand, lq[owner]), -np.inf)
        round_best = np.full(n, -np.inf)
        np.maximum.at(round_best, owner, val)
        hit = np.flatnonzero((val == round_best[owner]) & (val > best_v[owner]))
        best_x[owner[hit]] = cand[hit]
        best_v = np.maximum(best_v, round_best)
        keep = feasible & (ub > best_v[owner] + tol)
        if not keep.any():
            owner = owner[:0]
            break
        lo, hi, owner, x, a, b, t = (v[keep] for v in (lo, hi, owner, x, a, b, t))
        gap = a * x + b - _phi(x, lq[owner])
        w = hi - lo
        score = np.where(gap.max(1, keepdims=True) > 1e-15, gap, w)
        j = score.argmax(1)
        rows = np.arange(len(owner))
        wj = w[rows, j]
        # Zoom split: a narrow middle box around the linear maximiser (where the optimum
        # usually is; its secant gap shrinks by ZOOM²) and the two sides, which are usually
        # pruned next round. Empty sides are dropped.
        xj = np.clip(x[rows, j], lo[rows, j], hi[rows, j])
        c1 = np.maximum(xj - wj / (2 * ZOOM), lo[rows, j])
        c2 = np.minimum(xj + wj / (2 * ZOOM), hi[rows, j])
        los, his = [], []
        for left, right in ((lo[rows, j], c1), (c1, c2), (c2, hi[rows, j])):
            lo_c, hi_c = lo.copy(), hi.copy()
            lo_c[rows, j], hi_c[rows, j] = left, right
            los.append(lo_c)
            his.append(hi_c)
        width = np.concatenate([c1 - lo[rows, j], c2 - c1, hi[rows, j] - c2])
        lo, hi = np.concatenate(los), np.concatenate(his)
        owner = np.concatenate([owner] * 3)
        t_warm = np.concatenate([t] * 3)
        nonempty = width > 0
        lo, hi, owner, t_warm = lo[nonempty], hi[nonempty], owner[nonempty], t_warm[nonempty]
        ok = (lo.sum(1) <= 1.0 + 1e-12) & (hi.sum(1) >= 1.0 - 1e-12)
        lo, hi, owner, t_warm = lo[ok], hi[ok], owner[ok], t_warm[ok]
    else:
        # Node budget spent: report a bound that is still never below the true maximum.
        a, b = _secant(lo, hi, lq[owner])
        _, ub_lin, feasible, _ = max_linear(a, p[owner], delta[owner] ** 2, lo, hi)
        np.maximum.at(open_ub, owner[feasible], (ub_lin + b.sum(1))[feasible])
    gap = np.maximum(open_ub - best_v, 0.0)
    return WorstCase(np.maximum(best_v, open_ub), best_x, gap)
