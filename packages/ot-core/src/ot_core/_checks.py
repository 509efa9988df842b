"""Input validation shared by every solver: clear errors that name the argument, the value and the fix."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

FLOAT_DTYPES = (torch.float32, torch.float64)


def as_tensor(value: Any, name: str, *, like: torch.Tensor | None = None) -> torch.Tensor:
    """Turn arrays and sequences into a floating tensor (on ``like``'s device/dtype when given)."""
    if isinstance(value, torch.Tensor):
        t = value
    elif isinstance(value, (np.ndarray, list, tuple, float, int)):
        t = torch.as_tensor(np.asarray(value))
    else:
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(value).__name__}")
    if like is not None:
        t = t.to(device=like.device, dtype=like.dtype)
    elif not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    if t.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} has dtype {t.dtype}; pass float32 or float64 (e.g. {name}.float())")
    return t


def check_finite(t: torch.Tensor, name: str) -> None:
    if not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"{name} contains {bad} NaN or infinite entries; clean the input before solving")


def check_reg(reg: Any, name: str = "reg") -> float:
    if isinstance(reg, torch.Tensor):
        reg = float(reg.detach())
    if reg is None or not isinstance(reg, (int, float)) or not math.isfinite(reg) or reg <= 0:
        raise ValueError(
            f"{name} (epsilon) must be a positive finite number, got {reg!r}; "
            "use reg=None (or 0) in ot_core.solve for exact OT"
        )
    return float(reg)


def check_weights(w: Any, size: int, batch: int, name: str, like: torch.Tensor) -> torch.Tensor:
    """Validate marginal weights and return them with shape (batch, size). ``None`` means uniform 1/size."""
    if w is None:
        return torch.full((batch, size), 1.0 / size, dtype=like.dtype, device=like.device)
    w = as_tensor(w, name, like=like)
    if w.dim() == 1:
        w = w.unsqueeze(0).expand(batch, -1)
    if w.dim() != 2 or w.shape[-1] != size or w.shape[0] not in (1, batch):
        raise ValueError(
            f"{name} has shape {tuple(w.shape)} but the problem needs ({size},) or ({batch}, {size}); "
            f"pass one weight per {'row' if name == 'a' else 'column'} of the cost"
        )
    w = w.expand(batch, size)
    check_finite(w, name)
    if bool((w < 0).any()):
        raise ValueError(f"{name} has negative entries (min {float(w.min()):.3g}); weights must be >= 0")
    if bool((w.sum(-1) <= 0).any()):
        raise ValueError(f"{name} sums to 0; every marginal needs positive total mass")
    return w


def parse_unbalanced(unbalanced: Any) -> tuple[float, float]:
    """``None`` -> balanced (inf, inf); a number rho -> (rho, rho); a pair -> (rho_a, rho_b)."""
    if unbalanced is None:
        return math.inf, math.inf
    if isinstance(unbalanced, (int, float)):
        pair = (float(unbalanced), float(unbalanced))
    else:
        try:
            pair = tuple(float(r) for r in unbalanced)
        except TypeError:
            raise TypeError(f"unbalanced must be a number or a pair (rho_a, rho_b), got {unbalanced!r}") from None
        if len(pair) != 2:
            raise ValueError(f"unbalanced must be a pair (rho_a, rho_b), got {len(pair)} values")
    for rho in pair:
        if not rho > 0:
            raise ValueError(f"unbalanced marginal penalties must be > 0 (inf for a hard side), got {pair}")
    return pair  # type: ignore[return-value]


def choice(value: Any, name: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of {allowed}")
    return value
