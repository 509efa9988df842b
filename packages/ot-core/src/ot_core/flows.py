"""Flow helpers: interpolants and conditional targets for flow matching, ODE integration (fixed-step with
gradients through every step, or adaptive through torchdiffeq), weighted particles (x, log w), path costs.

A *field* is ``field(t, state) -> d state / dt`` where ``t`` is a 0-d tensor and ``state`` a tensor or a tuple of
tensors (e.g. (x, log w)).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch.utils.checkpoint import checkpoint as _checkpoint

__all__ = [
    "interpolant",
    "conditional_velocity",
    "Trajectory",
    "integrate",
    "weighted_field",
    "path_cost",
    "kinetic_energy",
    "FIXED_STEP_METHODS",
]

State = torch.Tensor | tuple[torch.Tensor, ...]
Field = Callable[[torch.Tensor, State], State]
FIXED_STEP_METHODS = ("euler", "midpoint", "rk4")


def interpolant(
    x0: torch.Tensor,
    x1: torch.Tensor,
    s: torch.Tensor,
    sigma: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """x_s = (1 - s) x0 + s x1 + sigma * noise, with s of shape (N,) or (N, 1) in [0, 1] and noise ~ N(0, I).

    The backward interpolant (from x1 to x0) is ``interpolant(x1, x0, s)``.
    """
    s = s.reshape(-1, *([1] * (x0.dim() - 1))).to(x0.dtype)
    xs = (1 - s) * x0 + s * x1
    if sigma > 0:
        xs = xs + sigma * torch.randn(xs.shape, dtype=xs.dtype, device=xs.device, generator=generator)
    return xs


def conditional_velocity(x0: torch.Tensor, x1: torch.Tensor, dt: float | torch.Tensor) -> torch.Tensor:
    """Straight-line velocity target (x1 - x0) / dt for an interval of real duration dt."""
    return (x1 - x0) / dt


@dataclass
class Trajectory:
    """``states``: the state at each requested time (stacked on a leading time axis; a tuple for tuple states);
    ``path``: every intermediate step state (fixed-step methods with ``return_path=True``);
    ``running_cost``: sum_k h_k * running_cost(state_k) over the steps (fixed-step methods)."""

    states: State
    path: list[State] | None = None
    running_cost: torch.Tensor | None = None


def _axpy(y: State, h, dy: State) -> State:
    if isinstance(y, tuple):
        return tuple(a + h * b for a, b in zip(y, dy))
    return y + h * dy


def _fixed_step(field: Field, t: torch.Tensor, y: State, h: torch.Tensor, method: str) -> State:
    if method == "euler":
        return _axpy(y, h, field(t, y))
    if method == "midpoint":
        k1 = field(t, y)
        return _axpy(y, h, field(t + h / 2, _axpy(y, h / 2, k1)))
    k1 = field(t, y)
    k2 = field(t + h / 2, _axpy(y, h / 2, k1))
    k3 = field(t + h / 2, _axpy(y, h / 2, k2))
    k4 = field(t + h, _axpy(y, h, k3))
    if isinstance(y, tuple):
        return tuple(a + h / 6 * (b1 + 2 * b2 + 2 * b3 + b4) for a, b1, b2, b3, b4 in zip(y, k1, k2, k3, k4))
    return y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def _stack(states: Sequence[State]) -> State:
    if isinstance(states[0], tuple):
        return tuple(torch.stack(parts) for parts in zip(*states))
    return torch.stack(list(states))


def integrate(
    field: Field,
    y0: State,
    times: torch.Tensor | Sequence[float],
    *,
    method: str = "euler",
    substeps: int = 1,
    step_sizes: torch.Tensor | None = None,
    running_cost: Callable[[State], torch.Tensor] | None = None,
    return_path: bool = False,
    checkpoint: bool = False,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    adjoint: bool = False,
) -> Trajectory:
    """Integrate d state/dt = field(t, state) from ``times[0]``; return the states at ``times``.

    Fixed-step methods ("euler", "midpoint", "rk4") take ``substeps`` equal steps per interval (times may
    decrease: backward in time), keep autograd through every step, and accept ``step_sizes`` (K,) (may require
    grad) instead: then K steps t_{k+1} = t_k + h_k from times[0] and the returned states are those after every
    step. ``checkpoint=True`` recomputes each step in backward (memory of one step). Any other method name
    ("dopri5", "bosh3", "adaptive_heun", ...) is passed to ``torchdiffeq.odeint`` (``adjoint=True``:
    ``odeint_adjoint``, ``field`` must then be an nn.Module) with ``rtol``/``atol``.
    """
    like = y0[0] if isinstance(y0, tuple) else y0
    times = torch.as_tensor(times, dtype=like.dtype, device=like.device)
    if times.dim() != 1 or times.numel() < 1:
        raise ValueError(f"times must be a 1-D sequence of output times, got shape {tuple(times.shape)}")
    if method not in FIXED_STEP_METHODS:
        if step_sizes is not None or running_cost is not None or return_path or checkpoint:
            raise ValueError(f"step_sizes, running_cost, return_path and checkpoint need a fixed-step method "
                             f"{FIXED_STEP_METHODS}, not {method!r}")
        import torchdiffeq

        solver = torchdiffeq.odeint_adjoint if adjoint else torchdiffeq.odeint
        return Trajectory(states=solver(field, y0, times, method=method, rtol=rtol, atol=atol))
    if substeps < 1:
        raise ValueError(f"substeps must be >= 1, got {substeps}")

    if step_sizes is not None:
        steps = [(None, h) for h in step_sizes]
    else:
        steps = []
        for k in range(times.numel() - 1):
            h = (times[k + 1] - times[k]) / substeps
            steps += [(k, h)] * substeps

    def one_step(t, y, h):
        return _fixed_step(field, t, y, h, method)

    y, t = y0, times[0]
    outputs, path = [y0], [y0] if return_path else None
    cost = torch.zeros((), dtype=like.dtype, device=like.device) if running_cost is not None else None
    for idx, (interval, h) in enumerate(steps):
        if running_cost is not None:
            cost = cost + h.abs() * running_cost(y)
        if checkpoint and torch.is_grad_enabled():
            flat = y if isinstance(y, tuple) else (y,)
            res = _checkpoint(lambda t_, h_, *ys: one_step(t_, ys if isinstance(y, tuple) else ys[0], h_),
                              t, h, *flat, use_reentrant=False)
            y = res
        else:
            y = one_step(t, y, h)
        t = t + h
        if return_path:
            path.append(y)
        last_of_interval = step_sizes is not None or (idx + 1) % substeps == 0
        if last_of_interval:
            outputs.append(y)
    return Trajectory(states=_stack(outputs), path=path, running_cost=cost)


def weighted_field(velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                   growth: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Field:
    """Field of weighted particles (x, log w): dx/dt = v(x, t), d log w/dt = g(x, t).

    ``velocity(x, t)`` returns (N, d) and ``growth(x, t)`` returns (N,) or (N, 1); ``t`` is broadcast to (N, 1).
    """

    def field(t: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
        x, _ = state
        tt = t.reshape(1, 1).expand(x.shape[0], 1).to(x.dtype)
        return velocity(x, tt), growth(x, tt).reshape(x.shape[0])

    return field


def path_cost(states: Sequence[torch.Tensor], fn: Callable[[torch.Tensor], torch.Tensor], h) -> torch.Tensor:
    """sum_k h_k fn(I_k) over the path states I_0..I_K (fn returns a per-sample cost (B,)); h a number or (K+1,)."""
    hs = h if isinstance(h, (list, tuple)) or (isinstance(h, torch.Tensor) and h.dim() == 1) else [h] * len(states)
    return sum(hk * fn(s) for hk, s in zip(hs, states))


def kinetic_energy(states: Sequence[torch.Tensor], h) -> torch.Tensor:
    """sum_k h_k || (I_{k+1} - I_k) / h_k ||^2 per sample (B,): the action of the discrete path."""
    hs = h if isinstance(h, (list, tuple)) or (isinstance(h, torch.Tensor) and h.dim() == 1) else [h] * (len(states) - 1)
    total = 0
    for hk, s0, s1 in zip(hs, states[:-1], states[1:]):
        total = total + ((s1 - s0) ** 2).flatten(1).sum(1) / hk
    return total
