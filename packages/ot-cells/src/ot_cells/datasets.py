"""Data: two simulators with ground truth (embedded defaults, no download) and loaders for real data.

Every function returns an AnnData with the cells in ``X`` and ``obsm["X_emb"]``, the real time in
``obs["time"]`` (or the ``time_key`` you name) and the time point's rank in ``obs["time_index"]``.
Simulators also store their truths: ``obsm["velocity_true"]`` (dx/dt at the cell), ``obs["growth_true"]``
(d log w/dt at the cell), ``obsm["X_next_true"]`` (the same particle at the next time; NaN at the last),
``obs["logmass_increment_true"]`` (log w(t_{k+1}) - log w(t_k) of that particle), ``uns["truth"]["relative_mass"]``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import anndata as ad
import numpy as np
import pandas as pd

__all__ = [
    "toggle_switch",
    "gaussian_bifurcation",
    "gaussian_bifurcation_truth",
    "simulation_gene",
    "mouse_hematopoiesis",
    "read_snapshots_csv",
    "read",
    "from_arrays",
]


# ------------------------------------------------------------------------------------------ AnnData assembly
def from_arrays(Xs: Sequence[np.ndarray], times: Sequence[float], time_key: str = "time") -> ad.AnnData:
    """Snapshots given as arrays ``Xs[k]`` (n_k, d) observed at ``times[k]`` -> AnnData (``obsm["X_emb"]``)."""
    if len(Xs) != len(times):
        raise ValueError(f"from_arrays: got {len(Xs)} arrays but {len(times)} times; pass one time per array")
    Xs = [np.asarray(x, dtype=np.float32) for x in Xs]
    dims = {x.shape[1] if x.ndim == 2 else None for x in Xs}
    if len(dims) != 1 or None in dims:
        raise ValueError(f"from_arrays: every array must have shape (n_k, d) with the same d; got {[x.shape for x in Xs]}")
    X = np.concatenate(Xs)
    order = np.argsort(np.asarray(times, dtype=float), kind="stable")
    rank = np.empty(len(times), dtype=int)
    rank[order] = np.arange(len(times))
    obs = pd.DataFrame({
        time_key: np.repeat(np.asarray(times, dtype=float), [len(x) for x in Xs]),
        "time_index": np.repeat(rank, [len(x) for x in Xs]),
    }, index=[f"cell{i}" for i in range(len(X))])
    adata = ad.AnnData(X=X, obs=obs)
    adata.obsm["X_emb"] = X.copy()
    return adata


def _attach_truth(adata: ad.AnnData, velocity, growth, x_next, dlogw, relative_mass, times) -> None:
    adata.obsm["velocity_true"] = np.asarray(velocity, dtype=np.float32)
    adata.obs["growth_true"] = np.asarray(growth, dtype=np.float64)
    adata.obsm["X_next_true"] = np.asarray(x_next, dtype=np.float32)
    adata.obs["logmass_increment_true"] = np.asarray(dlogw, dtype=np.float64)
    adata.uns["truth"] = {"relative_mass": np.asarray(relative_mass, dtype=np.float64),
                          "times": np.asarray(times, dtype=np.float64)}


# ------------------------------------------------------------------------------------------ simulator A
TOGGLE_INITIAL_MEAN = (1.0, 1.0)
TOGGLE_INITIAL_SD = 0.15


def _toggle_field(x: np.ndarray, quiescent: np.ndarray) -> np.ndarray:
    """Mutual-repression toggle switch with self-activation (a = b = k = 1, n = 4); quiescent cells: -x."""
    xn = x**4
    f = np.stack([xn[:, 0] / (1 + xn[:, 0]) + 1 / (1 + xn[:, 1]) - x[:, 0],
                  xn[:, 1] / (1 + xn[:, 1]) + 1 / (1 + xn[:, 0]) - x[:, 1]], axis=1)
    return np.where(quiescent[:, None], -x, f)


def _toggle_growth(x: np.ndarray, quiescent: np.ndarray, alpha: float, delta: float) -> np.ndarray:
    g = alpha * x[:, 1] ** 2 / (1 + x[:, 1] ** 2) - delta
    return np.where(quiescent, 0.0, g)


def toggle_switch(
    n0: int = 400,
    times: Sequence[float] = (0, 1, 2, 3, 4),
    n_pool: int = 20000,
    alpha: float = 1.0,
    delta: float = 0.4,
    obs_noise: float = 0.0,
    quiescent_fraction: float = 0.0,
    dt: float = 0.01,
    seed: int = 0,
) -> ad.AnnData:
    """Simulator A: a two-gene toggle switch (attractors (1.93, 0.07) and (0.07, 1.93)) whose x2-high branch
    proliferates: g(x) = alpha x2^2 / (1 + x2^2) - delta (per time unit).

    A pool of ``n_pool`` weighted particles from N((1, 1), 0.15^2 I) is integrated with RK4 (step ``dt``); the
    snapshot at t_k has round(n0 M(t_k)) cells drawn with probability proportional to the particle weights, so
    snapshots are unpaired and the population grows as M(t) = mean_i w_i(t) (about 1, 1.10, 1.22, 1.39, 1.70).
    ``quiescent_fraction``: an extra population at N(0, 0.05^2 I) with field -x and no growth
    (``obs["population"]``). ``obs_noise``: Gaussian noise added to the observed positions.
    """
    rng = np.random.default_rng(seed)
    times = np.asarray(sorted(times), dtype=float)
    if times[0] < 0:
        raise ValueError(f"toggle_switch: times must be >= 0 (the pool starts at t = 0), got {times.tolist()}")
    n_q = int(round(quiescent_fraction * n_pool))
    x = np.concatenate([rng.normal(TOGGLE_INITIAL_MEAN, TOGGLE_INITIAL_SD, size=(n_pool - n_q, 2)),
                        rng.normal(0.0, 0.05, size=(n_q, 2))])
    quiescent = np.arange(n_pool) >= n_pool - n_q

    def rhs(state):
        pos = state[:, :2]
        return np.column_stack([_toggle_field(pos, quiescent), _toggle_growth(pos, quiescent, alpha, delta)])

    state = np.column_stack([x, np.zeros(n_pool)])
    t, snaps = 0.0, []
    for t_k in times:
        while t < t_k - 1e-12:
            h = min(dt, t_k - t)
            k1 = rhs(state)
            k2 = rhs(state + h / 2 * k1)
            k3 = rhs(state + h / 2 * k2)
            k4 = rhs(state + h * k3)
            state = state + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            t += h
        snaps.append(state.copy())
    return _sample_pool(snaps, times, n0, rng, obs_noise, quiescent,
                        velocity=_toggle_field,
                        growth=lambda pos, q: _toggle_growth(pos, q, alpha, delta),
                        params={"name": "toggle_switch", "alpha": alpha, "delta": delta, "n_pool": n_pool,
                                "obs_noise": obs_noise, "quiescent_fraction": quiescent_fraction, "seed": seed})


def _sample_pool(snaps, times, n0, rng, obs_noise, quiescent, velocity, growth, params) -> ad.AnnData:
    """Draw each snapshot from the weighted pool states ``snaps[k]`` (n_pool, d + 1) = (x, log w);
    ``velocity(x, quiescent)`` and ``growth(x, quiescent)`` give the truths at the drawn particles."""
    masses = np.array([np.exp(s[:, -1]).mean() for s in snaps])
    Xs, vel, gro, nxt, dlw, pop = [], [], [], [], [], []
    for k, s in enumerate(snaps):
        w = np.exp(s[:, -1])
        idx = rng.choice(len(w), size=int(round(n0 * masses[k])), replace=True, p=w / w.sum())
        pos, q = s[idx, :-1], quiescent[idx]
        following = snaps[k + 1][idx] if k + 1 < len(snaps) else np.full_like(s[idx], np.nan)
        vel.append(velocity(pos, q))
        gro.append(growth(pos, q))
        nxt.append(following[:, :-1])
        dlw.append(following[:, -1] - s[idx, -1])
        pop.append(q)
        Xs.append(pos + obs_noise * rng.standard_normal(pos.shape) if obs_noise > 0 else pos)
    adata = from_arrays(Xs, times)
    _attach_truth(adata, *(np.concatenate(v) for v in (vel, gro, nxt, dlw)), masses, times)
    adata.obs["population"] = pd.Categorical(np.where(np.concatenate(pop), "quiescent", "switch"))
    adata.uns["simulator"] = params
    return adata


# ------------------------------------------------------------------------------------------ simulator B
def _orthogonal(dim: int, seed: int) -> np.ndarray:
    """A seeded random orthogonal matrix (QR of a Gaussian matrix, signs fixed by diag(R) > 0)."""
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((dim, dim)))
    return q * np.sign(np.diag(r))


def gaussian_bifurcation_truth(t: float, c: float = 1.0, kappa: float = 0.6, gamma: float = 0.5, g0: float = 0.0,
                               delta: float = 0.3, s: float = 0.1) -> dict:
    """Closed form of simulator B at time t in its 2-D coordinates (u1, u2): the two Gaussian components'
    means (2, 2), common covariance (2, 2), masses (2,) (upper, lower) and the relative mass M(t)."""
    h = gamma * np.expm1(kappa * t) / kappa
    signs = np.array([1.0, -1.0])
    means = np.stack([np.full(2, c * t), np.exp(kappa * t) * (signs * delta + s**2 * h)], axis=1)
    cov = np.diag([s**2, s**2 * np.exp(2 * kappa * t)])
    masses = 0.5 * np.exp(g0 * t + signs * h * delta + 0.5 * s**2 * h**2)
    return {"means": means, "cov": cov, "masses": masses, "relative_mass": float(masses.sum()),
            "upper_share": float(masses[0] / masses.sum())}


def gaussian_bifurcation(
    n0: int = 400,
    times: Sequence[float] = (0, 0.5, 1, 1.5, 2, 2.5, 3),
    dim: int = 2,
    c: float = 1.0,
    kappa: float = 0.6,
    gamma: float = 0.5,
    g0: float = 0.0,
    delta: float = 0.3,
    s: float = 0.1,
    s_z: float = 0.1,
    seed: int = 0,
) -> ad.AnnData:
    """Simulator B, exact in closed form: v(u) = (c, kappa u2), g(u) = gamma u2 + g0, started from
    1/2 N((0, +delta), s^2 I) + 1/2 N((0, -delta), s^2 I). Affine flow plus linear growth keep both components
    Gaussian, so each snapshot is drawn exactly from the mixture at t_k (round(n0 M(t_k)) cells); M(t) = 1, 1.004,
    1.024, 1.075, 1.195, 1.464, 2.085 at the default times. ``dim > 2`` embeds (u, z), z ~ N(0, s_z^2 I), with a
    seeded random rotation Q: x = Q [u; z]. Truths are those of the same particle (``X_next_true`` = T(x)).
    """
    if dim < 2:
        raise ValueError(f"gaussian_bifurcation: dim must be >= 2, got {dim}")
    rng = np.random.default_rng(seed)
    times = np.asarray(sorted(times), dtype=float)
    par = dict(c=c, kappa=kappa, gamma=gamma, g0=g0, delta=delta, s=s)
    Q = _orthogonal(dim, seed + 7919) if dim > 2 else np.eye(2)
    Xs, vel, gro, nxt, dlw, masses = [], [], [], [], [], []
    for k, t in enumerate(times):
        truth = gaussian_bifurcation_truth(t, **par)
        n = int(round(n0 * truth["relative_mass"]))
        comp = rng.random(n) < truth["upper_share"]
        u = truth["means"][np.where(comp, 0, 1)] + rng.standard_normal((n, 2)) * np.sqrt(np.diag(truth["cov"]))
        z = s_z * rng.standard_normal((n, dim - 2))
        dt = times[k + 1] - t if k + 1 < len(times) else np.nan
        u_next = np.column_stack([u[:, 0] + c * dt, u[:, 1] * np.exp(kappa * dt)])
        Xs.append(np.column_stack([u, z]) @ Q.T)
        vel.append(np.column_stack([np.full(n, c), kappa * u[:, 1], np.zeros((n, dim - 2))]) @ Q.T)
        gro.append(gamma * u[:, 1] + g0)
        nxt.append(np.column_stack([u_next, z]) @ Q.T)
        dlw.append(g0 * dt + gamma * u[:, 1] * np.expm1(kappa * dt) / kappa)
        masses.append(truth["relative_mass"])
    adata = from_arrays(Xs, times)
    _attach_truth(adata, np.concatenate(vel), np.concatenate(gro), np.concatenate(nxt), np.concatenate(dlw),
                  masses, times)
    adata.uns["simulator"] = {"name": "gaussian_bifurcation", "dim": dim, "s_z": s_z, "seed": seed, **par}
    adata.uns["truth"]["rotation"] = Q
    return adata


# ------------------------------------------------------------------------------------------ real-data loaders
def read_snapshots_csv(path: str | os.PathLike, time_col: str = "samples", times: Mapping | None = None,
                       time_key: str = "time") -> ad.AnnData:
    """A CSV with one row per cell: a time column (``time_col``) and the coordinates (every other column), as in
    the DeepRUOT/VGFM/MIOFlow data files. ``times`` maps the file's time labels to real times (default: the
    labels themselves, which must be numeric)."""
    df = pd.read_csv(path)
    if time_col not in df.columns:
        raise KeyError(f"{path}: no column {time_col!r}; columns are {list(df.columns)}; pass time_col=...")
    labels = df[time_col]
    if times is not None:
        missing = sorted(set(labels.unique()) - set(times))
        if missing:
            raise ValueError(f"times= has no real time for the labels {missing} of {path}")
        t = labels.map(times).to_numpy(dtype=float)
    else:
        t = pd.to_numeric(labels, errors="coerce").to_numpy(dtype=float)
        if np.isnan(t).any():
            raise TypeError(f"{path}: column {time_col!r} is not numeric; pass times={{label: time, ...}}")
    coords = df.drop(columns=[time_col]).to_numpy(dtype=np.float32)
    uniq = np.unique(t)
    return from_arrays([coords[t == u] for u in uniq], uniq, time_key=time_key)


def read(path: str | os.PathLike, time_col: str = "samples") -> ad.AnnData:
    """Read an ``.h5ad`` file (as is) or a snapshot CSV (see :func:`read_snapshots_csv`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    if path.suffix == ".h5ad":
        return ad.read_h5ad(path)
    if path.suffix == ".csv":
        return read_snapshots_csv(path, time_col=time_col)
    raise ValueError(f"{path}: unknown file type {path.suffix!r}; pass an .h5ad or a snapshot .csv file")


def _find_data_file(name: str, path: str | os.PathLike | None) -> Path:
    candidates = [Path(path)] if path is not None else []
    if os.environ.get("OT_CELLS_DATA"):
        candidates.append(Path(os.environ["OT_CELLS_DATA"]) / name)
    candidates.append(Path(__file__).resolve().parents[4] / ".." / "shared" / "data" / "cells" / name)
    for cand in candidates:
        if cand.is_file():
            return cand
    raise FileNotFoundError(
        f"{name} not found (looked in {[str(c) for c in candidates]}); download it from the DeepRUOT repository "
        f"(zhenyiizhang/DeepRUOT, data/{name}) and pass path=..., or set OT_CELLS_DATA to its folder"
    )


def simulation_gene(path: str | os.PathLike | None = None) -> ad.AnnData:
    """The 2-gene simulation with growth of DeepRUOT/VGFM (3,031 cells at t = 0..4; 400 ... 969 cells).
    Looks in ``path``, then ``$OT_CELLS_DATA``, then ``../shared/data/cells/`` beside the repository."""
    return read_snapshots_csv(_find_data_file("simulation_gene_data.csv", path))


def mouse_hematopoiesis(path: str | os.PathLike | None = None) -> ad.AnnData:
    """Weinreb et al. 2020 mouse hematopoiesis in a 2-D embedding (10,998 cells at days 2, 4, 6; DeepRUOT).
    ``obs["day"]`` holds the real day, ``obs["time"]`` the file's index 0, 1, 2."""
    adata = read_snapshots_csv(_find_data_file("mouse_hematopoiesis.csv", path))
    adata.obs["day"] = 2.0 + 2.0 * adata.obs["time"].to_numpy()
    return adata
