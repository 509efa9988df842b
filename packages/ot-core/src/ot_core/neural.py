"""Neural-OT losses. They take values (potentials, critic outputs, per-sample costs), never networks, except
:func:`gradient_penalty` which needs the critic to differentiate it. Every ``*_loss`` is to be minimised.

- W1 / semi-dual critics (WGAN-GP, RCOT, KIDOT, ARPM): :func:`critic_loss`, :func:`gradient_penalty`,
  :func:`semidual_map_loss`.
- Continuous regularised duals (Seguy et al. 2018; OTCS): :func:`dual_l2_loss`, :func:`l2_plan_density`,
  :func:`dual_entropic_loss`, :func:`entropic_plan_density`.
- ARPM source reweighting: :func:`reweight_simplex_ball` (exact, no conic solver).
- Barycenters with congruent potentials (BaryIR): :func:`congruence_penalty`, :func:`center_potentials`,
  :func:`barycenter_weights`, :func:`source_importance_weights`.
"""

from __future__ import annotations

from typing import Callable

import torch

from .solvers.simplex_ball import reweight_simplex_ball

__all__ = [
    "reweight_simplex_ball",
    "critic_loss",
    "w1_critic_loss",
    "gradient_penalty",
    "semidual_map_loss",
    "dual_l2_loss",
    "l2_plan_density",
    "dual_entropic_loss",
    "entropic_plan_density",
    "congruence_penalty",
    "center_potentials",
    "barycenter_weights",
    "source_importance_weights",
]


# ------------------------------------------------------------------------------------------ critics and maps
def critic_loss(f_real: torch.Tensor, f_fake: torch.Tensor) -> torch.Tensor:
    """mean f(fake) - mean f(real): the critic minimises it, i.e. maximises the W1 / semi-dual gap.

    Pass ``f_fake`` computed on detached generated samples when training the critic.
    """
    return f_fake.mean() - f_real.mean()


#: The W1 critic loss of ARPM / WGAN is the same function.
w1_critic_loss = critic_loss


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    *,
    weight: float = 10.0,
    target_norm: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """WGAN-GP: weight * mean_i (||grad critic(x_hat_i)||_2 - target_norm)^2 on x_hat = alpha real + (1-alpha) fake.

    alpha ~ U(0, 1) per sample, broadcast over the non-batch dims; the endpoints are detached; the gradient norm
    runs over all non-batch dims; ``create_graph=True`` so the penalty trains the critic. Works under
    ``torch.no_grad()`` callers too (the caller's grad mode is restored).
    """
    if real.shape != fake.shape:
        raise ValueError(f"real {tuple(real.shape)} and fake {tuple(fake.shape)} must have the same shape")
    shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    alpha = torch.rand(shape, dtype=real.dtype, device=real.device, generator=generator)
    with torch.enable_grad():
        x_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
        out = critic(x_hat)
        (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
        return weight * ((grad.flatten(1).norm(dim=1) - target_norm) ** 2).mean()


def semidual_map_loss(
    f_mapped: torch.Tensor,
    cost: torch.Tensor,
    sigma: float = 1.0,
    sample_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Map (generator) loss of the semi-dual minimax: mean_i w_i (sigma * cost_i - f(T(y_i))).

    ``cost`` is the per-sample transport cost c(y_i, T(y_i)) of shape (B,) (or a scalar batch cost),
    ``sample_weights`` (B,) e.g. lambda_k(i) for barycenters (default 1).
    """
    if cost.dim() == 0:
        cost = cost.expand_as(f_mapped.reshape(-1))
    per = sigma * cost.reshape(-1) - f_mapped.reshape(-1)
    if sample_weights is not None:
        per = per * sample_weights.reshape(-1)
    return per.mean()


# ------------------------------------------------------------------------------------------ regularised duals
def _check_pair(u: torch.Tensor, v: torch.Tensor, c: torch.Tensor) -> None:
    if c.shape[-2:] != (u.shape[-1], v.shape[-1]):
        raise ValueError(f"cost of shape {tuple(c.shape)} does not match u {tuple(u.shape)} and v {tuple(v.shape)}")


def dual_l2_loss(u: torch.Tensor, v: torch.Tensor, c: torch.Tensor, eps: float) -> torch.Tensor:
    """Negated L2-regularised dual (Seguy et al. 2018): -(mean u + mean v - mean (u_i + v_j - c_ij)_+^2 / (4 eps)).

    u (n,), v (m,) potential values on two batches, c (n, m) their costs. Equals -POT
    ``ot.stochastic.loss_dual_quadratic`` with uniform weights.
    """
    _check_pair(u, v, c)
    slack = (u[:, None] + v[None, :] - c).clamp_min(0)
    return -(u.mean() + v.mean() - slack.pow(2).mean() / (4 * eps))


def l2_plan_density(u: torch.Tensor, v: torch.Tensor, c: torch.Tensor, eps: float) -> torch.Tensor:
    """H_ij = (u_i + v_j - c_ij)_+ / (2 eps): density of the L2-regularised plan w.r.t. mu x nu (mean 1 at the
    optimum); the discrete plan with uniform weights is H / (n m)."""
    _check_pair(u, v, c)
    return (u[:, None] + v[None, :] - c).clamp_min(0) / (2 * eps)


def dual_entropic_loss(u: torch.Tensor, v: torch.Tensor, c: torch.Tensor, eps: float) -> torch.Tensor:
    """Negated entropic dual: -(mean u + mean v - eps mean exp((u_i + v_j - c_ij) / eps)).

    The exponential is evaluated through a max-shift, so large arguments (tens of thousands of samples, small
    eps) overflow only if the value itself does.
    """
    _check_pair(u, v, c)
    z = (u[:, None] + v[None, :] - c) / eps
    zmax = z.max().detach()
    return -(u.mean() + v.mean() - eps * torch.exp(zmax) * torch.exp(z - zmax).mean())


def entropic_plan_density(u: torch.Tensor, v: torch.Tensor, c: torch.Tensor, eps: float) -> torch.Tensor:
    """H_ij = exp((u_i + v_j - c_ij) / eps) (density w.r.t. mu x nu)."""
    _check_pair(u, v, c)
    return torch.exp((u[:, None] + v[None, :] - c) / eps)


# ------------------------------------------------------------------------------------------ barycenters
def congruence_penalty(
    f_values: torch.Tensor, weights: torch.Tensor, *, weight: float = 10.0, reduction: str = "mean"
) -> torch.Tensor:
    """weight * reduce_i (sum_k lambda_k f_k(b_i))^2 for f_values (B, K) = the K potentials at the same B points.

    ``reduction="last"`` uses only the last point (BaryIR's original code).
    """
    if f_values.dim() != 2 or f_values.shape[1] != weights.numel():
        raise ValueError(f"f_values must be (B, K) with K = {weights.numel()}, got {tuple(f_values.shape)}")
    mix = f_values @ weights.to(f_values.dtype)
    if reduction == "mean":
        return weight * mix.pow(2).mean()
    if reduction == "last":
        return weight * mix[-1].pow(2)
    raise ValueError(f"reduction={reduction!r}; use 'mean' or 'last'")


def center_potentials(f_values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """f_k - sum_j lambda_j f_j, which makes sum_k lambda_k f_k = 0 exactly (weights sum to 1)."""
    return f_values - (f_values @ weights.to(f_values.dtype))[:, None]


def barycenter_weights(K: int | None = None, counts=None, mode: str = "uniform") -> torch.Tensor:
    """Barycenter weights lambda (K,) summing to 1: uniform, or ``mode="inverse_count"``: (1/n_k) / sum_j 1/n_j."""
    if mode == "uniform":
        if counts is not None:
            K = len(counts)
        if not K or K < 1:
            raise ValueError("barycenter_weights(mode='uniform') needs K >= 1 or counts")
        return torch.full((K,), 1.0 / K, dtype=torch.float64)
    if mode == "inverse_count":
        if counts is None:
            raise ValueError("mode='inverse_count' needs counts")
        n = torch.as_tensor(counts, dtype=torch.float64)
        if bool((n <= 0).any()):
            raise ValueError(f"counts must be positive, got {n.tolist()}")
        inv = 1.0 / n
        return inv / inv.sum()
    raise ValueError(f"mode={mode!r}; use 'uniform' or 'inverse_count'")


def source_importance_weights(labels: torch.Tensor, weights: torch.Tensor, sampling_probs: torch.Tensor) -> torch.Tensor:
    """Per-sample lambda_k(i) / p_k(i), so that the batch mean of w_i h_i estimates sum_k lambda_k E_{P_k}[h]
    when samples come from the mixture sum_k p_k P_k. Shape (B,)."""
    lam = weights.to(torch.float64)[labels]
    p = sampling_probs.to(torch.float64)[labels]
    if bool((p <= 0).any()):
        raise ValueError("sampling_probs must be positive for every label present in the batch")
    return lam / p
