"""Envelope (Danskin) gradients: the solver runs without autograd and the value gets its gradient at the optimum.

``attach_envelope(value, inputs, grad_fn)`` returns ``value`` with a backward that calls
``grad_fn(grad_out, needs_grad) -> tuple of gradients`` (one per input, ``None`` where not needed), so the
plan-sized work is done only when and for what backward asks.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from .costs import Cost, SqEuclidean

__all__ = ["attach_envelope", "point_gradients"]

GradFn = Callable[[torch.Tensor, Sequence[bool]], Sequence[torch.Tensor | None]]


class _Envelope(torch.autograd.Function):
    @staticmethod
    def forward(ctx, value, grad_fn, *inputs):
        ctx.grad_fn = grad_fn
        return value.detach().clone()

    @staticmethod
    def backward(ctx, grad_out):
        grads = ctx.grad_fn(grad_out, ctx.needs_input_grad[2:])
        return (None, None, *grads)


def attach_envelope(value: torch.Tensor, inputs: Sequence[torch.Tensor | None], grad_fn: GradFn) -> torch.Tensor:
    if not any(isinstance(t, torch.Tensor) and t.requires_grad for t in inputs):
        return value
    return _Envelope.apply(value, grad_fn, *inputs)


def point_gradients(
    plan,
    x: torch.Tensor,
    y: torch.Tensor,
    cost: Cost,
    weight: torch.Tensor,
    need_x: bool,
    need_y: bool,
    plan_block: Callable[[int, int, torch.Tensor], torch.Tensor],
    rows: int,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Gradients of sum_b weight_b sum_ij pi_bij c(x_bi, y_bj) in x (B, n, d) and y (B, m, d), pi fixed.

    Squared Euclidean: 2 s (r_i x_i - (P y)_i) through two plan applications. Other costs: autograd of the cost
    block by block (``plan_block(i0, i1, C_block)`` gives pi on those rows), memory O(rows * m).
    """
    w = weight[:, None, None]
    if isinstance(cost, SqEuclidean):
        s2 = 2 * cost.scale
        gx = gy = None
        if need_x:
            ones = torch.ones(*y.shape[:-1], 1, dtype=y.dtype, device=y.device)
            py = plan._apply(torch.cat([y, ones], dim=-1))
            gx = s2 * w * (py[..., -1:] * x - py[..., :-1])
        if need_y:
            ones = torch.ones(*x.shape[:-1], 1, dtype=x.dtype, device=x.device)
            px = plan.T._apply(torch.cat([x, ones], dim=-1))
            gy = s2 * w * (px[..., -1:] * y - px[..., :-1])
        return gx, gy
    gx = torch.zeros_like(x) if need_x else None
    gy = torch.zeros_like(y) if need_y else None
    with torch.enable_grad():
        xg = x.detach().requires_grad_(need_x)
        yg = y.detach().requires_grad_(need_y)
        for i0 in range(0, x.shape[1], rows):
            i1 = min(x.shape[1], i0 + rows)
            c = cost.matrix(xg[:, i0:i1], yg)
            p = plan_block(i0, i1, c.detach())
            targets = [t for t, need in ((xg, need_x), (yg, need_y)) if need]
            grads = torch.autograd.grad((p * c * w).sum(), targets)
            it = iter(grads)
            if need_x:
                gx += next(it)
            if need_y:
                gy += next(it)
    return gx, gy
