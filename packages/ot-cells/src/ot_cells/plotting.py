"""Plots (``oc.pl``), scanpy style: each takes ``ax=`` (drawn into a new figure when None), ``save=`` (a file
path) and ``show=`` (call ``plt.show()``), and returns the Axes unless ``show=True``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import anndata as ad
import matplotlib.pyplot as plt
import numpy as np

if TYPE_CHECKING:
    from .vgfm import VGFM

__all__ = ["mass", "growth", "trajectories", "velocity_stream", "srot_mass"]


def _axes(ax):
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4))
    return ax


def _finish(ax, save: str | Path | None, show: bool):
    if save is not None:
        ax.figure.savefig(save, dpi=150, bbox_inches="tight")
    if show:
        plt.show()
        return None
    return ax


def _basis(adata: ad.AnnData, basis: str) -> np.ndarray:
    """First two columns of ``obsm[basis]`` or ``obsm["X_" + basis]``."""
    for key in (basis, f"X_{basis}"):
        if key in adata.obsm:
            return np.asarray(adata.obsm[key])[:, :2]
    raise KeyError(f"basis={basis!r}: neither obsm[{basis!r}] nor obsm['X_{basis}'] exists "
                   f"(obsm keys: {list(adata.obsm.keys())})")


def mass(vg: "VGFM", n_points: int = 60, ax=None, save=None, show: bool = False):
    """Predicted relative mass M(t) along the rollout against the observed M_k (held-out times marked)."""
    ax = _axes(ax)
    S = vg.snapshots
    times, _, W = vg.trajectories(n_cells=None, n_bins=n_points)
    ax.plot(times, W.sum(1), color="C0", label="VGFM prediction")
    kept = np.array(vg.kept)
    ax.scatter(S.times[kept], S.relative_mass[kept], color="k", zorder=3, label="observed")
    if vg.held_out:
        ax.scatter(S.times[vg.held_out], S.relative_mass[vg.held_out], facecolor="none", edgecolor="C3", s=60,
                   zorder=3, label="held out")
    ax.set_xlabel(S.time_key)
    ax.set_ylabel("relative mass  N(t) / N(t0)")
    ax.legend(frameon=False)
    return _finish(ax, save, show)


def _scatter_values(adata, basis, values, ax, label, clip, cmap, center):
    xy = _basis(adata, basis)
    ok = np.isfinite(values)
    lo, hi = np.percentile(values[ok], [clip, 100 - clip])
    if center:
        lim = max(abs(lo), abs(hi))
        lo, hi = -lim, lim
    sc = ax.scatter(xy[ok, 0], xy[ok, 1], c=np.clip(values[ok], lo, hi), cmap=cmap, vmin=lo, vmax=hi, s=6,
                    linewidths=0)
    ax.figure.colorbar(sc, ax=ax, label=label)
    ax.set_xlabel(f"{basis} 1")
    ax.set_ylabel(f"{basis} 2")


def growth(adata: ad.AnnData, basis: str = "pca", key: str = "growth_vgfm", clip: float = 2.0, ax=None, save=None,
           show: bool = False):
    """Cells on an embedding coloured by growth (log-mass rate per unit time; values clipped to the
    [clip, 100 - clip] percentiles, zero in the middle of the colour map)."""
    if key not in adata.obs.columns:
        raise KeyError(f"obs[{key!r}] not found; run VGFM(...).fit().write() or oc.tl.vgfm first")
    ax = _axes(ax)
    _scatter_values(adata, basis, adata.obs[key].to_numpy(float), ax, key, clip, "RdBu_r", center=True)
    return _finish(ax, save, show)


def srot_mass(adata: ad.AnnData, basis: str = "pca", key: str = "srot_mass", clip: float = 2.0, ax=None, save=None,
              show: bool = False):
    """Cells coloured by their SROT mass factor (expected descendants per cell at the next time point)."""
    if key not in adata.obs.columns:
        raise KeyError(f"obs[{key!r}] not found; run oc.tl.srot first")
    ax = _axes(ax)
    _scatter_values(adata, basis, adata.obs[key].to_numpy(float), ax, key, clip, "viridis", center=False)
    return _finish(ax, save, show)


def trajectories(vg: "VGFM", n_cells: int = 100, n_bins: int = 100, ax=None, save=None, show: bool = False):
    """Observed cells (coloured by time) and ODE trajectories of ``n_cells`` first-time cells, in the first two
    dimensions of the model's representation."""
    ax = _axes(ax)
    S = vg.snapshots
    cmap = plt.get_cmap("viridis")
    span = max(S.times[-1] - S.times[0], 1e-12)
    for t, X in zip(S.times, S.X):
        ax.scatter(X[:, 0], X[:, 1], s=4, color=cmap((t - S.times[0]) / span), alpha=0.4, linewidths=0)
    _, paths, _ = vg.trajectories(n_cells=n_cells, n_bins=n_bins)
    for i in range(paths.shape[1]):
        ax.plot(paths[:, i, 0], paths[:, i, 1], color="k", lw=0.5, alpha=0.6)
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(S.times[0], S.times[-1]))
    ax.figure.colorbar(sm, ax=ax, label=S.time_key)
    ax.set_xlabel(f"{S.rep} 1")
    ax.set_ylabel(f"{S.rep} 2")
    return _finish(ax, save, show)


def velocity_stream(adata: ad.AnnData, basis: str = "pca", key: str = "velocity_vgfm", grid: int = 40,
                    ax=None, save=None, show: bool = False):
    """Streamlines of the cells' velocities (``obsm[key]``, first two dimensions, which must be those of the
    basis), smoothed onto a grid with a Gaussian kernel of one grid spacing."""
    if key not in adata.obsm:
        raise KeyError(f"obsm[{key!r}] not found; run VGFM(...).fit().write() or oc.tl.vgfm first")
    ax = _axes(ax)
    xy = _basis(adata, basis)
    v = np.asarray(adata.obsm[key])[:, :2]
    gx = np.linspace(xy[:, 0].min(), xy[:, 0].max(), grid)
    gy = np.linspace(xy[:, 1].min(), xy[:, 1].max(), grid)
    X, Y = np.meshgrid(gx, gy)
    pts = np.column_stack([X.ravel(), Y.ravel()])
    h = max(gx[1] - gx[0], gy[1] - gy[0])
    wsum, V = np.zeros(len(pts)), np.zeros((len(pts), 2))
    for i in range(0, len(pts), 100):  # kernel rows in chunks: memory O(100 n_cells)
        k = np.exp(-((pts[i:i + 100, None, :] - xy[None]) ** 2).sum(-1) / (2 * h**2))
        wsum[i:i + 100], V[i:i + 100] = k.sum(1), k @ v
    V /= np.maximum(wsum, 1e-12)[:, None]
    V[wsum < 1e-3 * wsum.max()] = np.nan
    ax.scatter(xy[:, 0], xy[:, 1], s=3, color="0.8", linewidths=0)
    ax.streamplot(gx, gy, V[:, 0].reshape(X.shape), V[:, 1].reshape(X.shape), color="k", density=1.2,
                  linewidth=0.7)
    ax.set_xlabel(f"{basis} 1")
    ax.set_ylabel(f"{basis} 2")
    return _finish(ax, save, show)
