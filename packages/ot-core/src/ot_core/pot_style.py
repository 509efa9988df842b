"""POT-style shortcuts (``a, b, C`` first) over :func:`ot_core.solve`, for users coming from POT."""

from __future__ import annotations

import torch

from . import _checks as chk
from .api import solve

__all__ = ["sinkhorn", "sinkhorn2", "sinkhorn_unbalanced", "emd", "emd2", "emd_blockwise", "partial"]


def sinkhorn(a, b, C, reg: float, **kw) -> torch.Tensor:
    """Entropic plan (log domain), like POT ``ot.sinkhorn(..., method="sinkhorn_log")``."""
    return solve(C, a, b, reg=reg, grad="detach", **kw).plan


def sinkhorn2(a, b, C, reg: float, **kw) -> torch.Tensor:
    """<C, pi> of the entropic plan, like POT ``ot.sinkhorn2`` (no gradient; use ``solve(...).value`` for one)."""
    return solve(C, a, b, reg=reg, grad="detach", **kw).value_linear


def sinkhorn_unbalanced(a, b, C, reg: float, reg_m, **kw) -> torch.Tensor:
    """KL-unbalanced plan; ``reg_m`` a number or (rho_a, rho_b) (first entry relaxes the rows, as in POT)."""
    return solve(C, a, b, reg=reg, unbalanced=reg_m, grad="detach", **kw).plan


def emd(a, b, C, num_iter_max: int = 10**7) -> torch.Tensor:
    """Exact plan by network simplex (float64 on CPU, returned on C's device and dtype)."""
    return solve(C, a, b, reg=None, num_iter_max=num_iter_max, grad="detach").plan


def emd2(a, b, C, num_iter_max: int = 10**7) -> torch.Tensor:
    """Exact OT value <C, pi*> with envelope gradients (dC = pi*, da, db = centred duals)."""
    return solve(C, a, b, reg=None, num_iter_max=num_iter_max).value


def partial(a, b, C, mass: float, reg: float | None = None, **kw) -> torch.Tensor:
    """Partial plan moving ``mass``: exact (reg None) or entropic (POT's entropy convention)."""
    kw.setdefault("reg_type", "entropy")
    return solve(C, a, b, reg=reg, mass=mass, grad="detach", **kw).plan


def emd_blockwise(C, a, b, labels_a, labels_b, num_iter_max: int = 10**7) -> torch.Tensor:
    """Exact plan with transport only inside each label (cost +inf across labels), solved as one EMD per label.

    Every label present must carry the same mass on both sides.
    """
    C = chk.as_tensor(C, "C")
    n, m = C.shape
    a = chk.check_weights(a, n, 1, "a", C)[0]
    b = chk.check_weights(b, m, 1, "b", C)[0]
    la, lb = torch.as_tensor(labels_a).reshape(-1), torch.as_tensor(labels_b).reshape(-1)
    if la.numel() != n or lb.numel() != m:
        raise ValueError(f"labels_a needs {n} entries and labels_b {m}; got {la.numel()} and {lb.numel()}")
    plan = torch.zeros_like(C)
    for label in torch.unique(torch.cat([la, lb])):
        ia, ib = torch.nonzero(la == label).reshape(-1), torch.nonzero(lb == label).reshape(-1)
        ma, mb = float(a[ia].sum()), float(b[ib].sum())
        if abs(ma - mb) > 1e-9 * max(1.0, ma):
            raise ValueError(f"label {label.item()} has mass {ma:.6g} in a but {mb:.6g} in b; blockwise EMD needs "
                             "equal per-label masses")
        if ma == 0:
            continue
        block = emd(a[ia], b[ib], C[ia][:, ib], num_iter_max)
        plan[ia.unsqueeze(1), ib.unsqueeze(0)] = block
    return plan
