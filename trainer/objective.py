"""The training objective: α·KL(p'‖q) + (1−α)·CE(q, r), with p' an adversarial target.

p' starts at the human p and takes ``pgd_steps`` steps of projected gradient *ascent* on
KL(p'‖q) (q held fixed), each step projected exactly onto {simplex} ∩ {‖p' − p‖₂ ≤ ε}. The
model is then trained against the worst plausible human distribution near p.

Zeros in p': ∂KL/∂p'_k = log p'_k − log q_k + 1 is −∞ at p'_k = 0. We evaluate it at
max(p'_k, 1e-12), which keeps it finite and keeps its sign (ascent never pushes mass *into* a
zero through this term: the huge negative value pushes it further to the boundary, where the
projection holds it at 0; mass can still enter a zero coordinate through the projection).

A label the model cannot produce (score −∞, e.g. a masked token; q_k = 0) would make every
term that touches it 0·(−∞) = NaN or +∞. Zero weights never touch it: a term with p_k = 0 (KL)
or r_k = 0 (CE) contributes exactly 0, value and gradient. Where p'_k or r_k is positive, log q_k
is read as log 1e-12 (the floor used for p' above), so the loss stays finite; that label's
score gets no gradient (it cannot move off −∞ anyway). Finite scores, however extreme (±1e4),
are used as they are.

Ablations are settings: single-point (α=0, ε=0); without adversary (ε=0); without KL (α=0: the
adversary is not computed since its target has weight 0, so ε has no effect); without CE (α=1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from distjudge_eval.distributions import project_to_simplex_ball

P_FLOOR = 1e-12
LOG_FLOOR = math.log(P_FLOOR)


def floor_neg_inf(log_q: torch.Tensor) -> torch.Tensor:
    """log q with −∞ (q_k = 0) read as log 1e-12; finite entries untouched."""
    return torch.where(torch.isneginf(log_q), torch.full_like(log_q, LOG_FLOOR), log_q)


def kl_rows(p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p‖q) per row; terms with p_k = 0 contribute 0 (and no NaN gradient)."""
    safe_log_p = torch.log(p.clamp(min=P_FLOOR))
    log_q = floor_neg_inf(log_q)
    return torch.where(p > 0, p * (safe_log_p - log_q), torch.zeros_like(p)).sum(-1)


def ce_rows(target: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """CE(q, r) = −Σ r_k log q_k per row; terms with r_k = 0 contribute 0 (no 0·(−∞) = NaN)."""
    log_q = floor_neg_inf(log_q)
    return torch.where(target > 0, -target * log_q, torch.zeros_like(target)).sum(-1)


def adversarial_target(
    p: torch.Tensor, log_q: torch.Tensor, epsilon: float, steps: int, step_size: float
) -> torch.Tensor:
    """Projected gradient ascent on KL(p'‖q) over {simplex} ∩ L2-ball(p, ε); q is detached."""
    if epsilon <= 0 or steps <= 0:
        return p
    log_q = floor_neg_inf(log_q.detach())  # else the ascent step is +∞ and projects to NaN
    adv = p.clone()
    for _ in range(steps):
        grad = torch.log(adv.clamp(min=P_FLOOR)) - log_q + 1.0
        adv = project_to_simplex_ball(adv + step_size * grad, p, epsilon)
    return adv


@dataclass
class LossParts:
    loss: torch.Tensor
    kl: torch.Tensor  # KL(p‖q), batch mean (reported)
    kl_adv: torch.Tensor  # KL(p'‖q), batch mean
    ce: torch.Tensor  # CE(q, r), batch mean
    acc: torch.Tensor  # argmax q hits the plurality (ties split), batch mean
    per_item: dict[str, torch.Tensor]  # kl, kl_adv, ce, acc of each item [B] (means above)


def hybrid_loss(
    scores: torch.Tensor,
    p: torch.Tensor,
    target: torch.Tensor,
    alpha: float,
    epsilon: float,
    pgd_steps: int = 5,
    pgd_step_size: float = 0.05,
) -> LossParts:
    """``scores`` [B, K] from the shared readout; ``target`` [B, K] is the plurality label as a
    distribution (one-hot, split evenly over ties)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    if epsilon < 0:
        raise ValueError(f"epsilon must be >= 0, got {epsilon}")
    log_q = torch.log_softmax(scores.float(), dim=-1)
    p = p.to(log_q)
    target = target.to(log_q)
    ce = ce_rows(target, log_q)
    kl = kl_rows(p, log_q)
    if alpha > 0:
        p_adv = adversarial_target(p, log_q, epsilon, pgd_steps, pgd_step_size)
        kl_adv = kl_rows(p_adv, log_q)
    else:
        kl_adv = kl.detach()
    loss = alpha * kl_adv.mean() + (1.0 - alpha) * ce.mean()
    hits = target.gather(-1, log_q.argmax(-1, keepdim=True)).squeeze(-1)
    per_item = {"kl": kl, "kl_adv": kl_adv, "ce": ce, "acc": hits}
    return LossParts(loss, kl.mean(), kl_adv.mean(), ce.mean(), hits.mean(), per_item)
