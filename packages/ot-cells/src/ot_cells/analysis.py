"""Push-forward, pull-back and cell-type transitions (moscot/wot conventions), batch-wise over lazy plans or
along the learned ODE. Used by :class:`~ot_cells.VGFM`; arrays are over the cells of one time point."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anndata as ad
import numpy as np
import pandas as pd
import torch

from .flow_matching import Interval
from .ode import integrate
from .snapshots import Snapshots

if TYPE_CHECKING:
    from .vgfm import VGFM

__all__ = ["source_data", "one_hot", "finish", "chain", "plan_transport", "flow_transport"]


def source_data(adata: ad.AnnData, S: Snapshots, time: float, data, subset) -> np.ndarray:
    """A mass over the cells of ``time`` (n_k,): ones (data None), an obs column (numeric values, or the
    categories in ``subset``), or an array of n_k values."""
    idx = S.obs_index[S.index_of(time)]
    if data is None:
        return np.ones(len(idx))
    if isinstance(data, str):
        if data not in adata.obs.columns:
            raise KeyError(f"data={data!r} is not a column of adata.obs")
        col = adata.obs[data].iloc[idx]
        if pd.api.types.is_numeric_dtype(col) and not isinstance(col.dtype, pd.CategoricalDtype):
            if subset is not None:
                raise ValueError(f"subset= selects categories, but obs[{data!r}] is numeric")
            values = col.to_numpy(dtype=float)
        else:
            if subset is None:
                raise ValueError(f"obs[{data!r}] is categorical; pass subset=<category or list of categories>")
            chosen = [subset] if isinstance(subset, str) else list(subset)
            values = col.isin(chosen).to_numpy(dtype=float)
            if values.sum() == 0:
                raise ValueError(f"no cell of time {time} has obs[{data!r}] in {chosen}")
    else:
        values = np.asarray(data, dtype=float).ravel()
        if len(values) != len(idx):
            raise ValueError(f"data has {len(values)} values but time {time} has {len(idx)} cells")
    if not np.isfinite(values).all() or (values < 0).any():
        raise ValueError("data must be finite and non-negative (a mass on the cells)")
    return values


def one_hot(adata: ad.AnnData, S: Snapshots, time: float, key: str) -> tuple[np.ndarray, list]:
    """Indicator matrix (n_k, G) of the categories of ``obs[key]`` present at ``time``, and their names."""
    if key not in adata.obs.columns:
        raise KeyError(f"{key!r} is not a column of adata.obs")
    col = adata.obs[key].iloc[S.obs_index[S.index_of(time)]].astype(str).to_numpy()
    names = sorted(set(col))
    return (col[:, None] == np.array(names)[None]).astype(float), names


def finish(values: np.ndarray, normalize: bool) -> np.ndarray:
    return values / values.sum() if normalize else values


def chain(intervals: list[Interval], k_from: int, k_to: int) -> list[Interval]:
    """The consecutive intervals linking snapshots k_from and k_to (in time order)."""
    lo, hi = min(k_from, k_to), max(k_from, k_to)
    kept = {iv.source for iv in intervals} | {iv.target for iv in intervals}
    if lo == hi or lo not in kept or hi not in kept:
        raise ValueError("source and target must be two different training (not held-out) time points")
    return [iv for iv in intervals if iv.source >= lo and iv.target <= hi]


def plan_transport(links: list[Interval], U: np.ndarray, forward: bool) -> np.ndarray:
    """Move a mass U (n_from, k) through the couplings: forward pi^T (U / a), backward pi (U / b)."""
    V = torch.from_numpy(np.asarray(U, dtype=np.float64))
    for iv in (links if forward else links[::-1]):
        c = iv.coupling
        plan = c.result.lazy_plan
        V = plan.T @ (V / c.a[:, None]) if forward else plan @ (V / c.b[:, None])
    return V.numpy()


def flow_transport(vg: "VGFM", k_from: int, k_to: int, U: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Move U (n_from, k) along the learned ODE (forward or backward in time), multiply by each cell's
    integrated growth exp(log w(t_to) - log w(t_from)), and deposit it on the nearest observed cell at t_to."""
    S = vg.snapshots
    x = S.X[k_from].float().to(vg.device)
    log_w = torch.zeros(len(x), device=vg.device)
    grid = vg.to_model_time([S.times[k_from], S.times[k_to]])
    with torch.no_grad():
        xs, lws = integrate(vg.field, x, log_w, grid, method="dopri5")
    x_hat, factor = xs[-1].cpu().double(), lws[-1].cpu().double().exp()
    y = S.X[k_to]
    nearest = torch.cat([torch.cdist(x_hat[i:i + chunk], y).argmin(1) for i in range(0, len(x_hat), chunk)])
    out = torch.zeros(len(y), U.shape[1], dtype=torch.float64)
    out.index_add_(0, nearest, torch.from_numpy(np.asarray(U, dtype=np.float64)) * factor[:, None])
    return out.numpy()
