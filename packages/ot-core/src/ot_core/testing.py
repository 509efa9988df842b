"""Closed forms and reference values used by tests across the ot-* packages."""

from __future__ import annotations

import torch

__all__ = ["gaussian_w2", "sqrtm_psd"]


def sqrtm_psd(S: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a positive semi-definite matrix (eigenvalues clipped at 0)."""
    w, V = torch.linalg.eigh(0.5 * (S + S.mT))
    return (V * w.clamp_min(0).sqrt().unsqueeze(-2)) @ V.mT


def gaussian_w2(m1: torch.Tensor, S1: torch.Tensor, m2: torch.Tensor, S2: torch.Tensor) -> torch.Tensor:
    """W2^2 between N(m1, S1) and N(m2, S2): |m1 - m2|^2 + Tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2)."""
    r1 = sqrtm_psd(S1)
    cross = sqrtm_psd(r1 @ S2 @ r1)
    return ((m1 - m2) ** 2).sum(-1) + torch.diagonal(S1 + S2 - 2 * cross, dim1=-2, dim2=-1).sum(-1)
