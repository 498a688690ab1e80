"""Human vote distributions and the geometry around them.

votes -> p, the plurality target, the seeded random δ-perturbations behind ``kl_exp`` (the
worst case ``kl_worst`` lives in :mod:`distjudge_eval.worst_case`), and the Euclidean projections
onto the simplex and onto simplex ∩ L2-ball that the metrics and the trainer's adversary use.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from distjudge_eval.seeding import stable_hash

if TYPE_CHECKING:
    import torch

DELTAS: tuple[float, ...] = (0.05, 0.10, 0.15, 0.20, 0.25)


def votes_to_p(votes: Sequence[int | float]) -> np.ndarray:
    """Normalise per-label vote counts to a distribution; no votes is an error, not a guess."""
    counts = np.asarray(votes, dtype=np.float64)
    if counts.ndim != 1 or np.any(counts < 0):
        raise ValueError(f"votes must be a 1-D list of non-negative counts, got {votes!r}")
    total = counts.sum()
    if total <= 0:
        raise ValueError("an item needs at least one vote to define p")
    return counts / total


def plurality_target(p: Sequence[float], atol: float = 1e-12) -> np.ndarray:
    """Indicator of the modal labels, split evenly on ties (a 2/2/1 vote gives [.5, .5, 0]).

    Accuracy against this target is the expected accuracy under a uniformly random tie-break, so
    items without a strict majority are kept rather than dropped.
    """
    arr = np.asarray(p, dtype=np.float64)
    modes = arr >= arr.max() - atol
    return modes / modes.sum()


def project_to_simplex(v: np.ndarray) -> np.ndarray:
    """Exact Euclidean projection of each row of ``v`` onto the probability simplex.

    The sort-based algorithm of Held et al. / Duchi et al. (2008), vectorised over rows.
    """
    x = np.atleast_2d(np.asarray(v, dtype=np.float64))
    k = x.shape[-1]
    u = -np.sort(-x, axis=-1)
    css = np.cumsum(u, axis=-1) - 1.0
    ind = np.arange(1, k + 1)
    cond = u - css / ind > 0
    rho = k - 1 - np.argmax(cond[:, ::-1], axis=-1)
    theta = css[np.arange(x.shape[0]), rho] / (rho + 1)
    out = np.maximum(x - theta[:, None], 0.0)
    return out.reshape(np.shape(v))


def item_seed(item_id: str, salt: str = "delta") -> int:
    """A 64-bit seed from an item id, stable across runs, machines and Python hash seeds."""
    return stable_hash(salt, item_id)


N_DIRECTIONS = 64


def perturbation_directions(
    item_id: str, k: int, n: int = N_DIRECTIONS, permutation: Sequence[int] | None = None
) -> np.ndarray:
    """``n`` seeded random unit vectors in the sum-zero plane of R^k, one per row.

    Drawn isotropically (Gaussian, centred, normalised) from a generator seeded by the item id,
    so runs repeat exactly and every δ of an item uses the same directions (a smooth δ-curve).
    ``permutation`` re-reads the labels in another order: an item shown with its labels permuted
    (the swapped slot order of a pairwise item, ``p_shown = p[perm]``) gets ``u[:, perm]``, the
    same physical directions, so an order-blind judge scores the same in both orders.
    """
    rng = np.random.default_rng(item_seed(item_id))
    u = rng.standard_normal((n, k))
    u -= u.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(u, axis=1, keepdims=True)
    u = np.divide(u, norm, out=np.zeros_like(u), where=norm > 0)  # k == 1: nowhere to move
    if permutation is not None:
        u = u[:, list(permutation)]
    return u


def perturb(
    p: Sequence[float],
    delta: float,
    item_id: str,
    n: int = N_DIRECTIONS,
    permutation: Sequence[int] | None = None,
) -> np.ndarray:
    """``n`` perturbed targets p̃_i = Π_simplex(p + δ·u_i), one per row (see ``kl_exp``).

    The projection Π is the exact Euclidean projection onto the simplex. It is non-expansive and
    p lies on the simplex, so ‖p̃_i − p‖₂ ≤ δ, with equality unless p + δu_i left the simplex
    (common: most human p have zeros, and then the step is shortened and pushed inward).
    """
    arr = np.asarray(p, dtype=np.float64)
    return project_to_simplex(
        arr + delta * perturbation_directions(item_id, arr.size, n, permutation)
    )


def project_to_simplex_torch(v: torch.Tensor) -> torch.Tensor:
    """Batched exact Euclidean projection of the rows of ``v`` onto the simplex (sort-based)."""
    import torch

    k = v.shape[-1]
    u, _ = torch.sort(v, dim=-1, descending=True)
    css = torch.cumsum(u, dim=-1) - 1.0
    ind = torch.arange(1, k + 1, device=v.device, dtype=v.dtype)
    cond = (u - css / ind) > 0
    rho = k - 1 - torch.argmax(cond.flip(-1).to(torch.int8), dim=-1)
    theta = css.gather(-1, rho[..., None]) / (rho[..., None] + 1).to(v.dtype)
    return torch.clamp(v - theta, min=0.0)


def project_to_simplex_ball(
    v: torch.Tensor,
    center: torch.Tensor,
    radius: float | torch.Tensor,
    max_iters: int = 50,
    tol: float | None = None,
) -> torch.Tensor:
    """Batched exact Euclidean projection onto {simplex} ∩ {x : ‖x − center‖₂ ≤ radius}.

    ``center`` must lie on the simplex. KKT with multiplier λ ≥ 0 on the ball gives
    x(t) = Π_simplex(center + t d), d = v − center, t = 1/(1+λ) ∈ (0, 1], and
    g(t) = ‖x(t) − center‖² grows with t. So x = Π_simplex(v) when that is inside the ball;
    otherwise we solve g(t) = radius². On a piece where the support S of x(t) is fixed, x(t) is
    affine in t, so g is a quadratic whose root is exact on that piece: a safeguarded Newton
    iteration (the piece's root, or bisection of the bracket when that root leaves it) converges
    in a handful of vectorised steps, each one sort-based simplex projection. No solver; runs on
    the tensors' device.
    """
    import torch

    tol = 64 * torch.finfo(v.dtype).eps if tol is None else tol
    radius_t = torch.as_tensor(radius, dtype=v.dtype, device=v.device)
    r2 = (radius_t.expand(v.shape[:-1]) if radius_t.ndim == 0 else radius_t) ** 2
    d = v - center
    full = project_to_simplex_torch(v)
    inside = ((full - center) ** 2).sum(-1) <= r2
    lo = torch.zeros(v.shape[:-1], dtype=v.dtype, device=v.device)
    hi = torch.ones_like(lo)
    t = hi.clone()
    x = full
    for _ in range(max_iters):
        g = ((x - center) ** 2).sum(-1)
        converged = inside | ((g - r2).abs() <= tol * (1.0 + r2))
        if bool(converged.all()):
            break
        hi = torch.where(g > r2, t, hi)
        lo = torch.where(g > r2, lo, t)
        support = (x > 0).to(v.dtype)
        n = support.sum(-1, keepdim=True)
        # On S: x − center = t·u + w with u = d − mean_S(d), w = −(Σ_S center − 1)/|S|;
        # off S: x − center = −center.
        u = (d - (support * d).sum(-1, keepdim=True) / n) * support
        w = -((support * center).sum(-1, keepdim=True) - 1.0) / n * support
        a = (u * u).sum(-1)
        b = 2.0 * (u * w).sum(-1)
        c = (w * w).sum(-1) + ((1.0 - support) * center**2).sum(-1) - r2
        root = (-b + (b * b - 4.0 * a * c).clamp(min=0.0).sqrt()) / (2.0 * a).clamp(min=1e-300)
        ok = (a > 0) & (root > lo) & (root < hi)
        t = torch.where(converged, t, torch.where(ok, root, 0.5 * (lo + hi)))
        x = project_to_simplex_torch(center + t[..., None] * d)
    return torch.where(inside[..., None], full, x)
