"""Tools (``oc.tl``): the VGFM model, its functional form, stand-alone SROT couplings, hold-out benchmark."""

from __future__ import annotations

from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from .evaluation import holdout_benchmark
from .snapshots import check_free_keys
from .vgfm import VGFM

__all__ = ["VGFM", "vgfm", "srot", "holdout_benchmark"]


def vgfm(adata: ad.AnnData, time_key: str = "time", rep: str = "X_pca", n_dims: int | None = None,
         key_added: str = "vgfm", copy: bool = False, overwrite: bool = False, progress: bool = True,
         config: Any = None, **settings: Any) -> ad.AnnData | None:
    """Fit VGFM and write ``obsm[f"velocity_{key_added}"]``, ``obs[f"growth_{key_added}"]`` and the model in
    ``uns[key_added]`` (restore it with ``oc.tl.VGFM.load(adata)``). ``settings``: VGFMConfig fields."""
    adata = adata.copy() if copy else adata
    check_free_keys(adata, {"obs": [f"growth_{key_added}"], "obsm": [f"velocity_{key_added}"],
                            "uns": [key_added]}, overwrite)
    VGFM(adata, time_key, rep, n_dims, config=config).fit(progress=progress, **settings).write(
        key_added=key_added, overwrite=overwrite)
    return adata if copy else None


def srot(adata: ad.AnnData, time_key: str = "time", rep: str = "X_pca", n_dims: int | None = None,
         epsilon: float = 0.01, reg_m: float = 5.0, scale_cost: str | None = "max", growth_prior_key: str | None = None,
         auto: bool = False, solver: str = "semidual", key_added: str = "srot", copy: bool = False,
         overwrite: bool = False) -> ad.AnnData | None:
    """Semi-relaxed OT between consecutive time points. Writes ``obs[f"{key_added}_mass"]`` (m_i / a_i, expected
    descendants per cell at the next time point), ``obs[f"{key_added}_growth"]`` (log(m_i / a_i) / dt; NaN at the
    last time) and ``uns[key_added]`` (settings and per-pair solver statistics)."""
    adata = adata.copy() if copy else adata
    check_free_keys(adata, {"obs": [f"{key_added}_mass", f"{key_added}_growth"], "uns": [key_added]}, overwrite)
    config = {"epsilon": epsilon, "reg_m": reg_m, "scale_cost": scale_cost, "auto": auto, "srot_solver": solver}
    vg = VGFM(adata, time_key, rep, n_dims, config=config, growth_prior_key=growth_prior_key)
    mass, growth = np.full(adata.n_obs, np.nan), np.full(adata.n_obs, np.nan)
    pairs = []
    for iv in vg.compute_couplings():
        idx = vg.snapshots.obs_index[iv.source]
        mass[idx] = iv.coupling.mass_factor.numpy()
        growth[idx] = iv.coupling.growth_target.numpy()
        pairs.append({"source": float(vg.snapshots.times[iv.source]), "target": float(vg.snapshots.times[iv.target]),
                      **iv.coupling.stats})
    adata.obs[f"{key_added}_mass"] = mass
    adata.obs[f"{key_added}_growth"] = growth
    table = pd.DataFrame(pairs)
    adata.uns[key_added] = {"params": {"epsilon": epsilon, "reg_m": reg_m, "scale_cost": str(scale_cost),
                                       "solver": solver, "time_key": time_key, "rep": rep},
                            "pairs": {c: table[c].to_numpy() for c in table.columns}}
    return adata if copy else None
