"""Embedded toy problems with known answers (no download) and a loader for point files.

Every generator takes ``n`` and ``seed`` and returns float64 tensors.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

__all__ = ["gaussians", "two_moons", "eight_gaussians", "growth_pair", "partial_pair", "load_points"]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def gaussians(n: int, mean, cov, seed: int = 0) -> torch.Tensor:
    """n samples of N(mean, cov); W2^2 between two Gaussians: :func:`ot_core.testing.gaussian_w2`."""
    mean = torch.as_tensor(mean, dtype=torch.float64)
    L = torch.linalg.cholesky(torch.as_tensor(cov, dtype=torch.float64))
    return mean + torch.randn(n, mean.numel(), dtype=torch.float64, generator=_gen(seed)) @ L.T


def two_moons(n: int, noise: float = 0.05, seed: int = 0) -> torch.Tensor:
    """Two interleaved half circles (outer: (cos t, sin t); inner: (1 - cos t, 0.5 - sin t)), t ~ U[0, pi]."""
    g = _gen(seed)
    n_out = n // 2
    t = torch.rand(n, dtype=torch.float64, generator=g) * math.pi
    outer = torch.stack([torch.cos(t[:n_out]), torch.sin(t[:n_out])], 1)
    inner = torch.stack([1 - torch.cos(t[n_out:]), 0.5 - torch.sin(t[n_out:])], 1)
    pts = torch.cat([outer, inner])
    return pts + noise * torch.randn(pts.shape, dtype=torch.float64, generator=g)


def eight_gaussians(n: int, radius: float = 2.0, sigma: float = 0.02, seed: int = 0) -> torch.Tensor:
    """Mixture of 8 isotropic Gaussians (std sigma) at the vertices of a regular octagon of the given radius."""
    g = _gen(seed)
    k = torch.randint(0, 8, (n,), generator=g)
    ang = k.double() * (2 * math.pi / 8)
    centres = radius * torch.stack([torch.cos(ang), torch.sin(ang)], 1)
    return centres + sigma * torch.randn(n, 2, dtype=torch.float64, generator=g)


def growth_pair(sep: float = 4.0, n: int = 200, sigma: float = 0.1, seed: int = 0):
    """Source: two clusters of n points at (0, 0) and (sep, 0); target: the same clusters shifted by (0, 0.5),
    the second one doubled (2n). Semi-relaxed OT should assign growth 1 to the first cluster and 2 to the second.
    Returns (x (2n, 2), y (3n, 2), true growth per source point (2n,))."""
    g = _gen(seed)

    def cluster(centre, size):
        return torch.tensor(centre, dtype=torch.float64) + sigma * torch.randn(size, 2, dtype=torch.float64, generator=g)

    x = torch.cat([cluster((0.0, 0.0), n), cluster((sep, 0.0), n)])
    y = torch.cat([cluster((0.0, 0.5), n), cluster((sep, 0.5), 2 * n)])
    growth = torch.cat([torch.ones(n, dtype=torch.float64), 2 * torch.ones(n, dtype=torch.float64)])
    return x, y, growth


def partial_pair(n: int = 50, outliers: int = 25, sigma: float = 0.3, seed: int = 0):
    """Source: 3 classes of n points (centres at radius 2, angles 0, 2pi/3, 4pi/3); target: classes 0 and 1
    plus ``outliers`` points uniform on the circle of radius 6. With uniform weights and mass 2/3, partial OT
    should move no mass from class 2. Returns (x (3n, 2), y (2n + outliers, 2), source labels, target labels
    (-1 for outliers))."""
    g = _gen(seed)
    ang = torch.tensor([0.0, 2 * math.pi / 3, 4 * math.pi / 3], dtype=torch.float64)
    centres = 2 * torch.stack([torch.cos(ang), torch.sin(ang)], 1)

    def sample(k):
        return centres[k] + sigma * torch.randn(n, 2, dtype=torch.float64, generator=g)

    x = torch.cat([sample(k) for k in range(3)])
    theta = torch.rand(outliers, dtype=torch.float64, generator=g) * 2 * math.pi
    y = torch.cat([sample(0), sample(1), 6 * torch.stack([torch.cos(theta), torch.sin(theta)], 1)])
    labels_x = torch.arange(3).repeat_interleave(n)
    labels_y = torch.cat([torch.zeros(n, dtype=torch.long), torch.ones(n, dtype=torch.long),
                          torch.full((outliers,), -1, dtype=torch.long)])
    return x, y, labels_x, labels_y


def load_points(path: str | Path, key: str | None = None, columns=None) -> torch.Tensor:
    """Read points (n, d) as float64 from .npy, .npz (array ``key`` or the first one) or a numeric .csv
    (header allowed; ``columns`` selects column indices or names)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    if path.suffix == ".npy":
        arr = np.load(path)
    elif path.suffix == ".npz":
        with np.load(path) as data:
            if key is None:
                key = data.files[0]
            if key not in data.files:
                raise KeyError(f"{path} has no array {key!r}; it holds {data.files}")
            arr = data[key]
    elif path.suffix == ".csv":
        arr = _read_csv(path, columns)
    else:
        raise ValueError(f"{path}: use a .npy, .npz or .csv file")
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{path}: expected a 2-D array of points, got shape {arr.shape}")
    return torch.from_numpy(arr)


def _read_csv(path: Path, columns) -> np.ndarray:
    with path.open() as fh:
        first = fh.readline().strip().split(",")
    try:
        [float(v) for v in first]
        header, skip = None, 0
    except ValueError:
        header, skip = [h.strip().strip('"') for h in first], 1
    data = np.loadtxt(path, delimiter=",", skiprows=skip, ndmin=2)
    if columns is None:
        return data
    idx = [header.index(c) if isinstance(c, str) and header else c for c in columns]
    return data[:, idx]
