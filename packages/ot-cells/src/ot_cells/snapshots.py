"""Read a time course out of an AnnData: validated real times, one representation matrix per time point, and
relative population sizes. Every check runs here, before any coupling or training, and never edits the AnnData."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Mapping, Sequence

import anndata as ad
import numpy as np
import pandas as pd
import torch

__all__ = ["Snapshots", "read_snapshots", "cell_times", "representation", "check_free_keys", "MIN_CELLS"]

#: fewest cells a time point may have (a coupling and a W1 estimate need a few cells per side)
MIN_CELLS = 10


@dataclass(frozen=True)
class Snapshots:
    """The observed time course.

    ``times`` (K,): real times, increasing; ``labels``: the ``obs[time_key]`` value of each time point;
    ``X[k]`` (n_k, d) float64: the cells of time point k; ``obs_index[k]``: their row positions in the AnnData;
    ``relative_mass`` (K,): M_k = N_k / N_0 (N_k = n_k unless population sizes are given).
    """

    times: np.ndarray
    labels: list
    X: list[torch.Tensor]
    obs_index: list[np.ndarray]
    relative_mass: np.ndarray
    time_key: str
    rep: str
    n_dims: int

    @property
    def counts(self) -> np.ndarray:
        return np.array([len(x) for x in self.X])

    def index_of(self, time: float) -> int:
        """Position of an observed time (exact match up to 1e-9 relative)."""
        hits = np.flatnonzero(np.isclose(self.times, float(time), rtol=1e-9, atol=1e-12))
        if len(hits) == 0:
            raise ValueError(f"time {time} is not an observed time of obs[{self.time_key!r}]; "
                             f"observed times: {self.times.tolist()}")
        return int(hits[0])


def cell_times(adata: ad.AnnData, time_key: str, times: Mapping | None = None) -> np.ndarray:
    """Real time of every cell from ``obs[time_key]`` (float64, shape (n_obs,)).

    Accepted: a numeric column; an ordered categorical (numeric categories are their own times, other
    categories their rank, with a warning); any column together with ``times={label: real time}``.
    """
    if time_key not in adata.obs.columns:
        raise KeyError(f"time_key={time_key!r} is not a column of adata.obs (columns: {list(adata.obs.columns)}); "
                       "pass the obs column that holds each cell's collection time")
    col = adata.obs[time_key]
    if times is not None:
        missing = sorted(map(str, set(col.unique()) - set(times)))
        if missing:
            raise ValueError(f"times= gives no real time for the obs[{time_key!r}] labels {missing}; "
                             "add them to the mapping")
        values = col.map(dict(times)).to_numpy(dtype=np.float64)
    elif isinstance(col.dtype, pd.CategoricalDtype):
        values = _ordered_categorical_times(col, time_key)
    elif pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        values = col.to_numpy(dtype=np.float64)
    else:
        examples = list(pd.unique(col))[:3]
        raise TypeError(
            f"obs[{time_key!r}] has dtype {col.dtype} (values such as {examples}), which is neither numeric nor an "
            f"ordered categorical; pass times={{label: real time, ...}} (e.g. {{{examples[0]!r}: 2.0, ...}}) or "
            f"convert the column to numbers first"
        )
    if not np.isfinite(values).all():
        raise ValueError(f"obs[{time_key!r}] has {int((~np.isfinite(values)).sum())} missing or infinite times; "
                         "drop those cells (adata = adata[adata.obs[time_key].notna()].copy())")
    return values


def _ordered_categorical_times(col: pd.Series, time_key: str) -> np.ndarray:
    if not col.cat.ordered:
        raise TypeError(
            f"obs[{time_key!r}] is an unordered categorical {list(col.cat.categories)}; order it "
            f"(adata.obs[{time_key!r}] = adata.obs[{time_key!r}].cat.as_ordered()) or pass times={{label: time}}"
        )
    numeric = pd.to_numeric(pd.Series(col.cat.categories), errors="coerce")
    if numeric.notna().all() and numeric.is_monotonic_increasing:
        return col.cat.codes.map(dict(enumerate(numeric))).to_numpy(dtype=np.float64)
    warnings.warn(
        f"obs[{time_key!r}] is an ordered categorical without numeric labels; using its ranks 0..K-1 as times. "
        "Pass times={label: real time} so that unequal gaps are respected",
        UserWarning,
        stacklevel=3,
    )
    return col.cat.codes.to_numpy(dtype=np.float64)


def representation(adata: ad.AnnData, rep: str, n_dims: int | None = None) -> np.ndarray:
    """``adata.obsm[rep]`` (or ``adata.X`` for rep="X"), first ``n_dims`` columns, as float64 (n_obs, d)."""
    if rep == "X":
        X = adata.X
    elif rep in adata.obsm:
        X = adata.obsm[rep]
    else:
        hint = " (compute it with sc.pp.pca(adata))" if rep == "X_pca" else ""
        raise KeyError(f"rep={rep!r} is not in adata.obsm (keys: {list(adata.obsm.keys())}){hint}; "
                       "pass rep='X' to use adata.X")
    if hasattr(X, "toarray"):
        X = X.toarray()
    X = np.asarray(X.to_numpy() if isinstance(X, pd.DataFrame) else X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] == 0:
        raise ValueError(f"rep={rep!r} must be a 2-D matrix with at least one column, got shape {X.shape}")
    if n_dims is not None:
        if not 1 <= int(n_dims) <= X.shape[1]:
            raise ValueError(f"n_dims={n_dims} but {rep!r} has {X.shape[1]} columns; pass n_dims <= {X.shape[1]}")
        X = X[:, : int(n_dims)]
    bad = ~np.isfinite(X)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        raise ValueError(f"rep={rep!r} has NaN or infinite values in {len(rows)} cells (first rows {rows[:5].tolist()}); "
                         "remove or impute them before fitting")
    return X


def read_snapshots(
    adata: ad.AnnData,
    time_key: str,
    rep: str,
    n_dims: int | None = None,
    times: Mapping | None = None,
    population_sizes: Mapping[float, float] | Sequence[float] | None = None,
    min_cells: int = MIN_CELLS,
) -> Snapshots:
    """Validate and split ``adata`` by time. Raises before any work when the time key is missing or of the
    wrong type, when fewer than two time points exist, when the representation is missing or has NaN, or when a
    time point has fewer than ``min_cells`` cells."""
    if not isinstance(adata, ad.AnnData):
        raise TypeError(f"adata must be an AnnData, got {type(adata).__name__}")
    t = cell_times(adata, time_key, times)
    X = representation(adata, rep, n_dims)
    uniq = np.unique(t)
    if len(uniq) < 2:
        raise ValueError(f"obs[{time_key!r}] has a single time point ({uniq.tolist()}); dynamics need at least two")
    index = [np.flatnonzero(t == u) for u in uniq]
    small = {float(u): len(i) for u, i in zip(uniq, index) if len(i) < min_cells}
    if small:
        raise ValueError(f"time points {small} have fewer than min_cells={min_cells} cells; merge or drop them "
                         "(or lower min_cells)")
    labels = [adata.obs[time_key].iloc[i[0]] for i in index]
    counts = np.array([len(i) for i in index], dtype=np.float64)
    sizes = _population_sizes(population_sizes, uniq, counts)
    return Snapshots(times=uniq, labels=labels, X=[torch.from_numpy(X[i]) for i in index], obs_index=index,
                     relative_mass=sizes / sizes[0], time_key=time_key, rep=rep, n_dims=X.shape[1])


def _population_sizes(population_sizes, times: np.ndarray, counts: np.ndarray) -> np.ndarray:
    if population_sizes is None:
        return counts
    if isinstance(population_sizes, Mapping):
        missing = [float(t) for t in times if not any(np.isclose(float(k), t) for k in population_sizes)]
        if missing:
            raise ValueError(f"population_sizes has no entry for the times {missing}")
        sizes = np.array([next(v for k, v in population_sizes.items() if np.isclose(float(k), t)) for t in times])
    else:
        sizes = np.asarray(population_sizes, dtype=np.float64)
        if sizes.shape != times.shape:
            raise ValueError(f"population_sizes has {sizes.size} values for {times.size} time points")
    sizes = np.asarray(sizes, dtype=np.float64)
    if not (np.isfinite(sizes).all() and (sizes > 0).all()):
        raise ValueError(f"population_sizes must be positive numbers, got {sizes.tolist()}")
    return sizes


def check_free_keys(adata: ad.AnnData, keys: Mapping[str, Sequence[str]], overwrite: bool) -> None:
    """Refuse to replace existing results (``{"obs": [...], "obsm": [...], "uns": [...]}``) unless ``overwrite``."""
    taken = [f"{slot}[{k!r}]" for slot, names in keys.items() for k in names if k in getattr(adata, slot)]
    if taken and not overwrite:
        raise ValueError(f"{', '.join(taken)} already exist in the AnnData; pass overwrite=True to replace them "
                         "or choose another key_added")
