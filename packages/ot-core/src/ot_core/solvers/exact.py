"""Exact OT and exact partial OT by POT's network simplex (C++, float64, CPU).

The plan, value and duals come back as tensors on the caller's device and dtype. Batched problems are solved
one by one (exact OT is a CPU algorithm).
"""

from __future__ import annotations

import warnings

import numpy as np
import ot
import torch

__all__ = ["emd_single", "partial_single", "EMD_NUM_ITER_MAX"]

#: POT's default 1e5 stops early (silently but for a warning) on problems of a few thousand points.
EMD_NUM_ITER_MAX = 10**7


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy()


def emd_single(a: torch.Tensor, b: torch.Tensor, C: torch.Tensor, num_iter_max: int = EMD_NUM_ITER_MAX):
    """Returns (plan (n, m) float64, u (n,), v (m,), warning or None) for one problem."""
    a_np, b_np = _np(a), _np(b)
    b_np = b_np * (a_np.sum() / b_np.sum())  # network simplex needs equal masses to the last bit
    plan, log = ot.emd(a_np, b_np, np.ascontiguousarray(_np(C)), numItermax=num_iter_max, log=True)
    return torch.from_numpy(plan), torch.from_numpy(log["u"]), torch.from_numpy(log["v"]), log["warning"]


def partial_single(a: torch.Tensor, b: torch.Tensor, C: torch.Tensor, mass: float,
                   num_iter_max: int = EMD_NUM_ITER_MAX):
    """Exact partial OT through one dummy point per side (Chapel et al. 2020); returns (plan, warning)."""
    a_np, b_np, C_np = _np(a), _np(b), _np(C)
    n, m = C_np.shape
    a_ext = np.append(a_np, b_np.sum() - mass)
    b_ext = np.append(b_np, a_np.sum() - mass)
    C_ext = np.zeros((n + 1, m + 1))
    C_ext[:n, :m] = C_np
    C_ext[n, m] = 2 * C_np.max() + 1.0
    plan, log = ot.emd(a_ext, b_ext, C_ext, numItermax=num_iter_max, log=True)
    return torch.from_numpy(plan[:n, :m].copy()), log["warning"]


def warn_emd(warning: str | None) -> None:
    if warning:
        warnings.warn(f"exact OT: {warning}; raise num_iter_max", RuntimeWarning, stacklevel=3)
