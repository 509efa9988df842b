"""Ground costs c(x, y) between points, and per-sample costs used by the neural-OT losses.

A :class:`Cost` gives the full matrix ``matrix(x, y)`` of shape (..., n, m) from points (..., n, d) and
(..., m, d), and ``paired(x, y)`` of shape (..., n) for row-aligned pairs. ``sqeuclidean`` is |x - y|^2 (POT/OTT
convention); ``SqEuclidean(half=True)`` is GeomLoss's |x - y|^2 / 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

__all__ = [
    "Cost",
    "SqEuclidean",
    "Euclidean",
    "PNorm",
    "Cosine",
    "MeanSq",
    "MeanAbs",
    "CallableCost",
    "get_cost",
    "rms_cost",
    "fourier_residual_cost",
]


class Cost:
    """Base class: subclasses define ``matrix``; ``paired`` defaults to the diagonal of a 1x1 matrix per pair."""

    name = "cost"

    def matrix(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def paired(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.matrix(x.unsqueeze(-2), y.unsqueeze(-2)).squeeze(-1).squeeze(-1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


@dataclass(frozen=True, repr=True)
class SqEuclidean(Cost):
    """|x - y|^2, or |x - y|^2 / 2 with ``half=True``. Written as s(|x|^2 + |y|^2 - 2 x.y) with s = 1 or 1/2."""

    half: bool = False
    name = "sqeuclidean"

    @property
    def scale(self) -> float:
        return 0.5 if self.half else 1.0

    def matrix(self, x, y):
        x2 = (x * x).sum(-1, keepdim=True)
        y2 = (y * y).sum(-1).unsqueeze(-2)
        return self.scale * (x2 + y2 - 2 * (x @ y.mT)).clamp_min(0)

    def paired(self, x, y):
        return self.scale * ((x - y) ** 2).sum(-1)


@dataclass(frozen=True, repr=True)
class PNorm(Cost):
    """|x - y|_2 ** p (the ground cost whose OT value is W_p^p). p = 1 is :class:`Euclidean`."""

    p: float = 1.0
    name = "pnorm"

    def matrix(self, x, y):
        d = SqEuclidean().matrix(x, y).sqrt()
        return d if self.p == 1 else d**self.p

    def paired(self, x, y):
        return (x - y).norm(dim=-1) ** self.p


@dataclass(frozen=True, repr=False)
class Euclidean(PNorm):
    """|x - y|_2 (W1 ground cost; POT's ``metric="euclidean"``)."""

    name = "euclidean"

    def __repr__(self) -> str:
        return "Euclidean()"


class Cosine(Cost):
    """1 - cos(x, y), in [0, 2]."""

    name = "cosine"

    def matrix(self, x, y):
        xn = torch.nn.functional.normalize(x, dim=-1)
        yn = torch.nn.functional.normalize(y, dim=-1)
        return 1 - xn @ yn.mT

    def paired(self, x, y):
        return 1 - torch.nn.functional.cosine_similarity(x, y, dim=-1)


class MeanSq(Cost):
    """mean_k (x_k - y_k)^2: squared Euclidean divided by d (OTCS's "l2" cost)."""

    name = "meansq"

    def matrix(self, x, y):
        return SqEuclidean().matrix(x, y) / x.shape[-1]

    def paired(self, x, y):
        return ((x - y) ** 2).mean(-1)


class MeanAbs(Cost):
    """mean_k |x_k - y_k| (OTCS's "l1" cost)."""

    name = "meanabs"

    def matrix(self, x, y):
        return torch.cdist(x, y, p=1) / x.shape[-1]

    def paired(self, x, y):
        return (x - y).abs().mean(-1)


class CallableCost(Cost):
    """Wrap ``fn(x, y) -> (..., n, m)`` matrix of costs."""

    name = "callable"

    def __init__(self, fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]):
        self.fn = fn

    def matrix(self, x, y):
        c = self.fn(x, y)
        if c.shape[-2:] != (x.shape[-2], y.shape[-2]):
            raise ValueError(
                f"the cost callable returned shape {tuple(c.shape)}; it must return (..., n, m) = "
                f"(..., {x.shape[-2]}, {y.shape[-2]}) for x of shape {tuple(x.shape)} and y of shape {tuple(y.shape)}"
            )
        return c

    def __repr__(self) -> str:
        return f"CallableCost({getattr(self.fn, '__name__', self.fn)!r})"


_NAMED = {
    "sqeuclidean": lambda half: SqEuclidean(half=half),
    "euclidean": lambda half: Euclidean(),
    "cosine": lambda half: Cosine(),
    "l2": lambda half: MeanSq(),
    "meansq": lambda half: MeanSq(),
    "l1": lambda half: MeanAbs(),
    "meanabs": lambda half: MeanAbs(),
}


def get_cost(cost: str | Cost | Callable, half: bool = False) -> Cost:
    """Resolve a cost name (``"sqeuclidean"``, ``"euclidean"``, ``"cosine"``, ``"l2"``, ``"l1"``), a
    :class:`Cost`, or a callable ``fn(x, y) -> (..., n, m)``."""
    if isinstance(cost, Cost):
        return cost
    if isinstance(cost, str):
        if cost not in _NAMED:
            raise ValueError(f"cost={cost!r} is unknown; use one of {sorted(_NAMED)} or pass a callable")
        return _NAMED[cost](half)
    if callable(cost):
        return CallableCost(cost)
    raise TypeError(f"cost must be a name, a Cost or a callable, got {type(cost).__name__}")


def rms_cost(residual: torch.Tensor) -> torch.Tensor:
    """sqrt(mean over the whole batch of residual^2): one scalar (RCOT's pixel cost)."""
    return residual.pow(2).mean().sqrt()


def fourier_residual_cost(
    residual: torch.Tensor,
    p: int = 1,
    mode: str = "sqrt",
    fft_norm: str = "backward",
    reduce: str = "sum",
) -> torch.Tensor:
    """Frequency-domain cost of image residuals r = y - T(y) of shape (B, C, H, W), FFT over (H, W).

    p = 1: mean |F r| per image. p = 2: ``mode="sqrt"`` sqrt(mean |F r|^2) (DA-RCOT) or ``mode="rcot_half"``
    mean |F r|^2 / 2 (RCOT's original operator precedence). ``reduce="sum"`` sums the per-image costs over the
    batch (as both originals do), ``"mean"`` averages, ``"none"`` returns shape (B,).
    """
    if residual.dim() < 3:
        raise ValueError(f"residual must have shape (B, ..., H, W); got {tuple(residual.shape)}")
    spec = torch.fft.fft2(residual, norm=fft_norm).abs()
    dims = tuple(range(1, spec.dim()))
    if p == 1:
        per = spec.mean(dims)
    elif p == 2:
        sq = spec.pow(2).mean(dims)
        if mode == "sqrt":
            per = sq.sqrt()
        elif mode == "rcot_half":
            per = sq / 2
        else:
            raise ValueError(f"mode={mode!r}; use 'sqrt' or 'rcot_half'")
    else:
        raise ValueError(f"p={p}; the Fourier residual cost supports p = 1 or 2")
    if reduce == "sum":
        return per.sum()
    if reduce == "mean":
        return per.mean()
    if reduce == "none":
        return per
    raise ValueError(f"reduce={reduce!r}; use 'sum', 'mean' or 'none'")
