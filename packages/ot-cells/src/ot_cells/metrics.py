"""Evaluation metrics: exact W1 between a weighted prediction and an observed snapshot, relative mass error,
and comparisons of learned against true velocity and growth."""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats

import ot_core

__all__ = ["w1", "relative_mass_error", "velocity_cosine", "velocity_relative_l2", "growth_correlation"]


def w1(x: torch.Tensor | np.ndarray, y: torch.Tensor | np.ndarray, weights=None) -> float:
    """Exact W1 (network simplex, Euclidean ground cost) between sum_i w_i delta_{x_i} (weights normalised;
    uniform when None) and the uniform measure on y (m, d)."""
    x, y = torch.as_tensor(_np(x), dtype=torch.float64), torch.as_tensor(_np(y), dtype=torch.float64)
    a = None
    if weights is not None:
        a = torch.as_tensor(_np(weights), dtype=torch.float64)
        a = a / a.sum()
    with torch.no_grad():
        return float(ot_core.solve_sample(x, y, a, None, cost="euclidean", reg=None).value)


def relative_mass_error(mass_pred: float, mass_obs: float) -> float:
    """|M_pred - M| / M."""
    return abs(float(mass_pred) - float(mass_obs)) / float(mass_obs)


def _np(v) -> np.ndarray:
    return v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)


def velocity_cosine(v_pred, v_true) -> float:
    """Mean cosine similarity between predicted and true velocities (N, d)."""
    a, b = _np(v_pred).astype(float), _np(v_true).astype(float)
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-300)
    return float(cos.mean())


def velocity_relative_l2(v_pred, v_true) -> float:
    """sqrt(sum |v_pred - v|^2 / sum |v|^2)."""
    a, b = _np(v_pred).astype(float), _np(v_true).astype(float)
    return float(np.sqrt(((a - b) ** 2).sum() / (b**2).sum()))


def growth_correlation(g_pred, g_true) -> dict[str, float]:
    """Spearman and Pearson correlations between learned and true growth rates (N,)."""
    a, b = _np(g_pred).astype(float).ravel(), _np(g_true).astype(float).ravel()
    return {"spearman": float(stats.spearmanr(a, b).statistic), "pearson": float(stats.pearsonr(a, b).statistic)}
