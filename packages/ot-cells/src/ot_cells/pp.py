"""Preprocessing (``oc.pp``): relative population sizes and prior growth from proliferation/apoptosis scores."""

from __future__ import annotations

from typing import Mapping, Sequence

import anndata as ad
import numpy as np

from .snapshots import _population_sizes, cell_times, check_free_keys

__all__ = ["relative_mass", "birth_death_prior"]


def relative_mass(adata: ad.AnnData, time_key: str = "time", population_sizes: Mapping | Sequence | None = None,
                  key_added: str = "relative_mass", copy: bool = False, overwrite: bool = False):
    """M_k = N_k / N_0 per time point (N_k = number of cells unless ``population_sizes`` are given), written to
    ``uns["ot_cells"][key_added]`` as {"time": (K,), "mass": (K,)}."""
    adata = adata.copy() if copy else adata
    t = cell_times(adata, time_key)
    times, counts = np.unique(t, return_counts=True)
    sizes = _population_sizes(population_sizes, times, counts.astype(float))
    store = adata.uns.setdefault("ot_cells", {})
    if key_added in store and not overwrite:
        raise ValueError(f"uns['ot_cells'][{key_added!r}] already exists; pass overwrite=True or another key_added")
    store[key_added] = {"time": times, "mass": sizes / sizes[0]}
    return adata if copy else None


def _logistic(p: np.ndarray, high: float, low: float, center: float, width: float) -> np.ndarray:
    return low + (high - low) / (1 + np.exp(-4 * (p - center) / width))


def birth_death_prior(
    adata: ad.AnnData,
    time_key: str,
    proliferation_key: str,
    apoptosis_key: str,
    key_added: str = "growth_prior",
    beta: tuple[float, float, float, float] = (1.7, 0.3, 0.25, 0.5),
    delta: tuple[float, float, float, float] = (1.7, 0.3, 0.1, 0.2),
    copy: bool = False,
    overwrite: bool = False,
):
    """Prior growth factor per cell over its next interval (moscot's birth-death model):
    beta(p) and delta(a) are logistic functions (max, min, center, width) of the proliferation and apoptosis
    scores (e.g. from ``sc.tl.score_genes``), G = exp((beta - delta) dt) with dt the gap to the next time point
    (1 at the last time). Writes ``obs[key_added]``; use it with ``VGFM(..., growth_prior_key=key_added)``."""
    adata = adata.copy() if copy else adata
    for key in (proliferation_key, apoptosis_key):
        if key not in adata.obs.columns:
            raise KeyError(f"{key!r} is not a column of adata.obs; score the gene sets first (sc.tl.score_genes)")
    check_free_keys(adata, {"obs": [key_added]}, overwrite)
    t = cell_times(adata, time_key)
    times = np.unique(t)
    gaps = dict(zip(times, np.append(np.diff(times), 0.0)))
    dt = np.array([gaps[v] for v in t])
    rate = _logistic(adata.obs[proliferation_key].to_numpy(float), *beta) - _logistic(
        adata.obs[apoptosis_key].to_numpy(float), *delta)
    adata.obs[key_added] = np.exp(rate * dt)
    return adata if copy else None
