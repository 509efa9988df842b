"""Differentiable forward operators with exact adjoints: Cartesian MRI (single- and multi-coil) and 2-D
parallel-beam CT, plus the k-space helpers they need (MONAI masks and centred FFTs, birdcage coil maps).

Layouts (channel-first, as MONAI and deepinv):

* images ``x``: ``(B, C, H, W)`` real; MRI images are complex, stored as ``C = 2`` real/imaginary channels; CT
  images have ``C = 1``;
* measurements ``y``: single-coil k-space ``(B, 2, H, W)``, multi-coil k-space ``(B, 2, N, H, W)`` (unmeasured
  entries are 0), CT sinograms ``(B, 1, D, V)`` (detectors x views).

Every operator is an ``nn.Module`` whose ``A`` and ``A_adjoint`` are made of autograd-friendly torch operations
(differentiable to any order) and satisfy <A x, y> = <x, A* y> for the real inner product
<u, v> = sum u * v = Re sum conj(u) v (:func:`check_adjoint`). Operators are normalised so that ||A*A|| <= 1.
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np
import torch
from monai.apps.reconstruction.transforms.array import EquispacedKspaceMask, RandomKspaceMask
from monai.networks.blocks.fft_utils_t import fftn_centered_t, ifftn_centered_t
from torch import nn

__all__ = [
    "LinearOperator",
    "SingleCoilMRI",
    "MultiCoilMRI",
    "ParallelBeamCT",
    "check_adjoint",
    "operator_norm",
    "cartesian_mask",
    "birdcage_maps",
    "fft2c",
    "ifft2c",
    "to_complex",
    "to_channels",
    "to_monai_complex",
    "from_monai_complex",
    "magnitude",
]

_MODULUS_EPS = 1e-12


# ------------------------------------------------------------------------------------------ complex helpers
def to_complex(x: torch.Tensor) -> torch.Tensor:
    """(B, 2, ...) real/imaginary channels -> complex (B, ...)."""
    return torch.complex(x[:, 0], x[:, 1])


def to_channels(z: torch.Tensor) -> torch.Tensor:
    """complex (B, ...) -> (B, 2, ...) real/imaginary channels."""
    return torch.stack((z.real, z.imag), dim=1)


def to_monai_complex(x: torch.Tensor) -> torch.Tensor:
    """(B, 2, H, W) channel layout (deepinv, this package) -> (B, H, W, 2) trailing layout (MONAI)."""
    return x.movedim(1, -1)


def from_monai_complex(x: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 2) trailing layout (MONAI) -> (B, 2, H, W) channel layout."""
    return x.movedim(-1, 1)


def magnitude(x: torch.Tensor) -> torch.Tensor:
    """|I| = sqrt(re^2 + im^2 + 1e-12) for (B, 2, H, W) (a finite gradient at 0); identity for (B, 1, H, W)."""
    if x.shape[1] == 1:
        return x
    return (x.pow(2).sum(1, keepdim=True) + _MODULUS_EPS).sqrt()


def fft2c(z: torch.Tensor) -> torch.Tensor:
    """Centred unitary 2-D FFT over the last two dims of a complex tensor (MONAI's ``fftn_centered_t``)."""
    return torch.view_as_complex(fftn_centered_t(torch.view_as_real(z), spatial_dims=2, is_complex=True))


def ifft2c(z: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`fft2c` (MONAI's ``ifftn_centered_t``)."""
    return torch.view_as_complex(ifftn_centered_t(torch.view_as_real(z), spatial_dims=2, is_complex=True))


# ------------------------------------------------------------------------------------------ base class
class LinearOperator(nn.Module):
    """A linear forward model ``y = A x`` with its exact adjoint.

    Subclasses define ``A``, ``A_adjoint``, ``image_shape`` (C, H, W) and ``measurement_shape``; ``start(y)`` is
    the classical reconstruction S(y) the KIDOT path starts from (default A* y) and ``misfit(x, y)`` the
    knowledge-informed cost mean_{measured} |y - A x| per sample.
    """

    #: number of image channels (2 for complex MRI images, 1 for CT)
    image_channels: int = 1
    #: True when A A* = identity on the measurements (A* A is then the orthogonal projection onto the
    #: measured part of image space, e.g. single-coil Cartesian MRI)
    partial_isometry: bool = False

    def A(self, x: torch.Tensor) -> torch.Tensor:  # noqa: N802 (operator notation)
        raise NotImplementedError

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:  # noqa: N802
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.A(x)

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """A* A x."""
        return self.A_adjoint(self.A(x))

    def start(self, y: torch.Tensor) -> torch.Tensor:
        """S(y): the image the reconstruction path starts from (zero-filled / SENSE-combined / FBP)."""
        return self.A_adjoint(y)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        raise NotImplementedError

    @property
    def measurement_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    @property
    def batch_size(self) -> int | None:
        """Number of per-sample acquisitions (e.g. masks) the operator holds; None when shared by any batch."""
        return None

    def subset(self, index: torch.Tensor) -> "LinearOperator":
        """The operator for the samples ``index`` of a batch (per-sample masks); shared operators return self."""
        return self

    def entry_modulus(self, r: torch.Tensor) -> torch.Tensor:
        """|r| per measured entry: the absolute value for real measurements."""
        return (r.pow(2) + _MODULUS_EPS).sqrt()

    def measured_fraction(self, like: torch.Tensor) -> torch.Tensor:
        """Per-sample number of measured entries of ``entry_modulus`` (B,) (all entries by default)."""
        return torch.full((like.shape[0],), float(like[0].numel()), dtype=like.dtype, device=like.device)

    def misfit(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """mean over measured entries of |y - A x| per sample (B,): the instantaneous KIDOT cost."""
        mod = self.entry_modulus(self.A(x) - y)
        return mod.flatten(1).sum(1) / self.measured_fraction(mod)

    def check_measurement(self, y: torch.Tensor, name: str = "y") -> torch.Tensor:
        """Validate ``y`` against ``measurement_shape`` (dtype, shape, finiteness); return it as a real tensor."""
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(y).__name__}")
        if y.is_complex():
            raise TypeError(f"{name} is a complex tensor; pass real/imaginary channels "
                            f"{(y.shape[0], *self.measurement_shape)} (ot_medrecon.physics.to_channels(y))")
        expected = tuple(self.measurement_shape)
        if y.dim() != len(expected) + 1 or tuple(y.shape[1:]) != expected:
            raise ValueError(f"{name} has shape {tuple(y.shape)}; this {type(self).__name__} expects "
                             f"(B, {', '.join(map(str, expected))})")
        if self.batch_size is not None and y.shape[0] != self.batch_size:
            raise ValueError(f"{name} holds {y.shape[0]} measurements but the operator holds {self.batch_size} "
                             "masks; pass one mask per measurement")
        if not torch.isfinite(y).all():
            raise ValueError(f"{name} contains NaN or Inf values; clean the measurements first")
        return y


# ------------------------------------------------------------------------------------------ MRI
def _as_mask(mask: torch.Tensor | np.ndarray, name: str = "mask") -> torch.Tensor:
    """Mask (H, W) or (B, H, W) or (B, 1, H, W), values in {0, 1} -> float tensor (B, 1, H, W)."""
    m = torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask)
    if m.is_complex():
        raise TypeError(f"{name} must be real (0/1), got a complex tensor")
    if m.dim() == 2:
        m = m[None, None]
    elif m.dim() == 3:
        m = m[:, None]
    elif not (m.dim() == 4 and m.shape[1] == 1):
        raise ValueError(f"{name} must be (H, W), (B, H, W) or (B, 1, H, W), got shape {tuple(m.shape)}")
    m = m.to(torch.float32) if not m.is_floating_point() else m
    if not bool(((m == 0) | (m == 1)).all()):
        raise ValueError(f"{name} must contain only 0 and 1 (sampled k-space entries), got other values")
    return m


class SingleCoilMRI(LinearOperator):
    """y = M F x: centred unitary 2-D FFT (MONAI convention) then a Cartesian sampling mask.

    ``mask``: (H, W) shared, or (B, H, W) / (B, 1, H, W) one per sample; 1 = sampled. Images (B, 2, H, W),
    k-space (B, 2, H, W) with zeros at unsampled entries. ||A|| = 1 for a full mask.
    """

    image_channels = 2
    partial_isometry = True  # A A* = identity on the measured entries, so A* A projects onto the measured k-space

    def __init__(self, mask: torch.Tensor | np.ndarray):
        super().__init__()
        self.register_buffer("mask", _as_mask(mask))

    @property
    def image_shape(self):
        return (2, *self.mask.shape[-2:])

    @property
    def measurement_shape(self):
        return (2, *self.mask.shape[-2:])

    @property
    def batch_size(self):
        return self.mask.shape[0] if self.mask.shape[0] > 1 else None

    def subset(self, index):
        return self if self.batch_size is None else type(self)(self.mask[index])

    def with_mask(self, mask: torch.Tensor) -> SingleCoilMRI:
        """The same acquisition with another sampling mask (B, 1, H, W)."""
        return type(self)(mask)

    def split_lines(self, fraction: float, generator: torch.Generator | None = None) -> SingleCoilMRI:
        """This operator with each measured Cartesian line (column) of each sample held out with probability
        ``fraction`` (never the centre column): the input side of a measurement split, as in self-supervised
        MRI (SSDU, Yaman et al. 2020). One draw per mask: a shared (1, 1, H, W) mask gets one split for the whole
        batch. Its ``A_adjoint`` masks y, so the full y can be passed to it."""
        lines = self.mask.amax(dim=-2, keepdim=True) > 0  # (B, 1, 1, W)
        draw = torch.rand(lines.shape, generator=generator).to(lines.device)
        held_out = lines & (draw < fraction)
        held_out[..., self.mask.shape[-1] // 2] = False
        return self.with_mask(self.mask * (~held_out).to(self.mask.dtype))

    def _mask(self, like):
        return self.mask.to(dtype=like.dtype, device=like.device)

    def A(self, x):  # noqa: N802
        return self._mask(x) * to_channels(fft2c(to_complex(x)))

    def A_adjoint(self, y):  # noqa: N802
        return to_channels(ifft2c(to_complex(self._mask(y) * y)))

    def entry_modulus(self, r):
        return (r.pow(2).sum(1) + _MODULUS_EPS).sqrt() * self._mask(r)[:, 0]

    def measured_fraction(self, like):
        return self._mask(like).flatten(1).sum(1).expand(like.shape[0])


class MultiCoilMRI(SingleCoilMRI):
    """y_c = M F (S_c x) for coils c = 1..N with sensitivity maps S (Σ_c |S_c|² = 1, e.g. :func:`birdcage_maps`).

    ``coil_maps``: complex (N, H, W) shared or (B, N, H, W) per sample. k-space (B, 2, N, H, W); ``A_adjoint``
    is the SENSE combination Σ_c conj(S_c) F⁻¹(M y_c).
    """

    partial_isometry = False  # A A* = M F (Σ_c S_c S_c*) F⁻¹ M is not the identity

    def __init__(self, mask, coil_maps: torch.Tensor):
        super().__init__(mask)
        maps = torch.as_tensor(coil_maps)
        if not maps.is_complex():
            raise TypeError("coil_maps must be a complex tensor (N, H, W) or (B, N, H, W)")
        if maps.dim() == 3:
            maps = maps[None]
        if maps.dim() != 4 or maps.shape[-2:] != self.mask.shape[-2:]:
            raise ValueError(f"coil_maps has shape {tuple(maps.shape)}; expected (N, H, W) or (B, N, H, W) with "
                             f"H, W = {tuple(self.mask.shape[-2:])} as the mask")
        self.register_buffer("maps_ri", torch.view_as_real(maps.to(torch.complex64)).contiguous())

    @property
    def n_coils(self) -> int:
        return self.maps_ri.shape[1]

    @property
    def measurement_shape(self):
        return (2, self.n_coils, *self.mask.shape[-2:])

    @property
    def batch_size(self):
        sizes = {s for s in (self.mask.shape[0], self.maps_ri.shape[0]) if s > 1}
        return sizes.pop() if sizes else None

    def subset(self, index):
        if self.batch_size is None:
            return self
        mask = self.mask[index] if self.mask.shape[0] > 1 else self.mask
        maps = self.maps_ri[index] if self.maps_ri.shape[0] > 1 else self.maps_ri
        return type(self)(mask, torch.view_as_complex(maps))

    def with_mask(self, mask: torch.Tensor) -> MultiCoilMRI:
        return type(self)(mask, torch.view_as_complex(self.maps_ri))

    def _maps(self, like):
        dtype = torch.float64 if like.dtype == torch.float64 else torch.float32
        return torch.view_as_complex(self.maps_ri.to(dtype=dtype, device=like.device))

    def _mask(self, like):
        return super()._mask(like).unsqueeze(2)  # (B, 1, 1, H, W): broadcast over channels and coils

    def A(self, x):  # noqa: N802
        coil_images = self._maps(x) * to_complex(x)[:, None]
        return self._mask(x) * to_channels(fft2c(coil_images))

    def A_adjoint(self, y):  # noqa: N802
        coil_images = ifft2c(to_complex(self._mask(y) * y))
        return to_channels((self._maps(y).conj() * coil_images).sum(1))

    def entry_modulus(self, r):
        return (r.pow(2).sum(1) + _MODULUS_EPS).sqrt() * self._mask(r)[:, 0]

    def measured_fraction(self, like):
        return super().measured_fraction(like) * self.n_coils


# ------------------------------------------------------------------------------------------ CT
def _trapezoid_cdf(u: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """CDF of U1 + U2 with U1 ~ U(-a/2, a/2), U2 ~ U(-b/2, b/2): the normalised projection of a unit pixel.

    Uses the exact piecewise-quadratic formula; a box when min(a, b) is below 1e-9 (views along an axis).
    """
    hi, lo = torch.maximum(a, b), torch.minimum(a, b)
    ramp2 = lambda s: s.clamp_min(0).pow(2) / 2  # noqa: E731
    p, q = (hi + lo) / 2, (hi - lo) / 2
    trap = (ramp2(u + p) - ramp2(u + q) - ramp2(u - q) + ramp2(u - p)) / (hi * lo).clamp_min(1e-30)
    box = ((u + hi / 2) / hi).clamp(0, 1)
    return torch.where(lo < 1e-9, box, trap.clamp(0, 1))


def strip_projection_matrix(img_size: int, angles_deg: torch.Tensor, n_detectors: int,
                            cor_offset: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sparse parallel-beam system matrix of the strip-area model, as COO (rows, cols, values) in float64.

    Entry (d, v; i, j) = area of pixel (i, j) inside the strip of detector bin d at view v, divided by the bin
    width (pixel and bin width 1): the exact bin-averaged line integral of a piecewise-constant image. Rows are
    ordered d * V + v (sinogram (D, V)), columns i * W + j. ``cor_offset`` shifts the centre of rotation by
    that many detector bins.
    """
    n = img_size
    theta = torch.deg2rad(angles_deg.to(torch.float64))
    coords = torch.arange(n, dtype=torch.float64) - (n - 1) / 2
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    centre = xx.reshape(1, -1) * torch.cos(theta)[:, None] + yy.reshape(1, -1) * torch.sin(theta)[:, None]
    pos = centre + (n_detectors - 1) / 2 + cor_offset  # (V, P) in detector-index units
    a, b = torch.cos(theta).abs()[:, None], torch.sin(theta).abs()[:, None]
    rows, cols, vals = [], [], []
    pixel = torch.arange(n * n).expand_as(pos)
    view = torch.arange(len(theta))[:, None].expand_as(pos)
    for shift in (-1, 0, 1):
        det = torch.round(pos) + shift
        rel = det - pos  # bin centre minus pixel centre
        weight = _trapezoid_cdf(rel + 0.5, a, b) - _trapezoid_cdf(rel - 0.5, a, b)
        keep = (weight > 1e-12) & (det >= 0) & (det < n_detectors)
        rows.append(det.long()[keep] * len(theta) + view[keep])
        cols.append(pixel[keep])
        vals.append(weight[keep])
    return torch.cat(rows), torch.cat(cols), torch.cat(vals)


@functools.lru_cache(maxsize=16)
def _cached_geometry(img_size: int, angles: tuple[float, ...], n_detectors: int, cor_offset: float):
    return strip_projection_matrix(img_size, torch.tensor(angles, dtype=torch.float64), n_detectors, cor_offset)


_NORMS: dict = {}


def _cached_norm(op: "ParallelBeamCT", key) -> float:
    if key not in _NORMS:
        _NORMS[key] = operator_norm(op, torch.float64, n_iter=100)
    return _NORMS[key]


class _SparseApply(torch.autograd.Function):
    """y = M x for a fixed sparse matrix M, with backward M^T (itself a _SparseApply: any-order gradients)."""

    @staticmethod
    def forward(ctx, x, matrix, matrix_t):
        ctx.matrices = (matrix, matrix_t)
        return torch.sparse.mm(matrix, x)

    @staticmethod
    def backward(ctx, grad):
        matrix, matrix_t = ctx.matrices
        return _SparseApply.apply(grad, matrix_t, matrix), None, None


def ramp_filter(n_detectors: int, dtype=torch.float64) -> torch.Tensor:
    """Ram-Lak filter in the detector domain (Kak & Slaney eq. 3.61, unit spacing), length 2D - 1."""
    k = torch.arange(-(n_detectors - 1), n_detectors, dtype=dtype)
    h = torch.zeros_like(k)
    h[k == 0] = 0.25
    odd = k.remainder(2) == 1
    h[odd] = -1.0 / (math.pi * k[odd]) ** 2
    return h


class ParallelBeamCT(LinearOperator):
    """2-D parallel-beam CT with the strip-area (exact bin-integrated) projector and its exact transpose.

    ``angles``: number of views equally spaced over [0°, 180°) or a tensor of angles in degrees. ``n_detectors``
    defaults to ceil(sqrt(2) * img_size) (the whole image in every view). ``cor_offset``: centre-of-rotation
    offset in detector bins. ``normalize=True`` divides by ||A|| (power iteration) so ||A*A|| = 1;
    ``self.scale`` keeps that factor (sinogram in pixel-length units = scale * y). Images (B, 1, H, W),
    sinograms (B, 1, D, V). ``start(y)`` is filtered back-projection (Ram-Lak).
    """

    def __init__(self, img_size: int, angles: int | torch.Tensor = 60, n_detectors: int | None = None,
                 cor_offset: float = 0.0, normalize: bool = True):
        super().__init__()
        if not isinstance(img_size, int) or img_size < 4:
            raise ValueError(f"img_size must be an int >= 4, got {img_size!r}")
        if isinstance(angles, int):
            if angles < 1:
                raise ValueError(f"angles must be >= 1 views, got {angles}")
            angles = torch.arange(angles, dtype=torch.float64) * (180.0 / angles)
        angles = torch.as_tensor(angles, dtype=torch.float64).reshape(-1)
        self.img_size = img_size
        self.n_detectors = n_detectors or math.ceil(math.sqrt(2) * img_size)
        self.register_buffer("angles", angles)
        rows, cols, vals = _cached_geometry(img_size, tuple(angles.tolist()), self.n_detectors, float(cor_offset))
        self.register_buffer("_rows", rows, persistent=False)
        self.register_buffer("_cols", cols, persistent=False)
        self.register_buffer("_vals", vals, persistent=False)
        self._cache: dict = {}
        self.scale = 1.0
        if normalize:
            self.scale = _cached_norm(self, (img_size, tuple(angles.tolist()), self.n_detectors, float(cor_offset)))
            self._cache.clear()

    @property
    def n_views(self) -> int:
        return len(self.angles)

    @property
    def image_shape(self):
        return (1, self.img_size, self.img_size)

    @property
    def measurement_shape(self):
        return (1, self.n_detectors, self.n_views)

    def _matrices(self, like: torch.Tensor):
        key = (like.dtype, like.device)
        if key not in self._cache:
            n_rows, n_cols = self.n_detectors * self.n_views, self.img_size**2
            vals = (self._vals / self.scale).to(like.dtype)
            idx = torch.stack((self._rows, self._cols))
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
                m, mt = (torch.sparse_coo_tensor(i, vals, shape, check_invariants=False).coalesce().to_sparse_csr()
                         for i, shape in ((idx, (n_rows, n_cols)), (idx.flip(0), (n_cols, n_rows))))
            self._cache[key] = (m.to(like.device), mt.to(like.device))
        return self._cache[key]

    def A(self, x):  # noqa: N802
        m, mt = self._matrices(x)
        y = _SparseApply.apply(x.reshape(x.shape[0], -1).T, m, mt)
        return y.T.reshape(x.shape[0], 1, self.n_detectors, self.n_views)

    def A_adjoint(self, y):  # noqa: N802
        m, mt = self._matrices(y)
        x = _SparseApply.apply(y.reshape(y.shape[0], -1).T, mt, m)
        return x.T.reshape(y.shape[0], 1, self.img_size, self.img_size)

    def fbp(self, y: torch.Tensor) -> torch.Tensor:
        """Filtered back-projection: (pi / V) * A_raw^T (ramp * (scale * y)) with the Ram-Lak filter."""
        h = ramp_filter(self.n_detectors, y.dtype).to(y.device)
        sino = y.movedim(-1, 1).reshape(-1, 1, self.n_detectors)  # (B V, 1, D)
        filtered = nn.functional.conv1d(sino, h.view(1, 1, -1), padding=self.n_detectors - 1)
        filtered = filtered.reshape(y.shape[0], self.n_views, 1, self.n_detectors).movedim(1, -1)
        return self.A_adjoint(filtered) * (math.pi * self.scale**2 / self.n_views)

    def start(self, y):
        return self.fbp(y)


# ------------------------------------------------------------------------------------------ checks
def _random_like_shape(shape, dtype, generator):
    return torch.randn(shape, dtype=dtype, generator=generator)


def check_adjoint(op: LinearOperator, dtype: torch.dtype = torch.float64, n_trials: int = 3,
                  batch: int | None = None, generator: torch.Generator | None = None) -> float:
    """max over trials of |<A x, y> - <x, A* y>| / |<A x, y>| for random Gaussian x, y (real inner product)."""
    generator = generator or torch.Generator().manual_seed(0)
    batch = batch or op.batch_size or 2
    worst = 0.0
    with torch.no_grad():
        for _ in range(n_trials):
            x = _random_like_shape((batch, *op.image_shape), dtype, generator)
            y = op.A(_random_like_shape((batch, *op.image_shape), dtype, generator))  # y in the range of A
            y = y + _random_like_shape(y.shape, dtype, generator) * (y != 0)
            lhs = (op.A(x) * y).sum()
            rhs = (x * op.A_adjoint(y)).sum()
            worst = max(worst, float((lhs - rhs).abs() / lhs.abs().clamp_min(torch.finfo(dtype).tiny)))
    return worst


def operator_norm(op: LinearOperator, dtype: torch.dtype = torch.float64, n_iter: int = 100,
                  generator: torch.Generator | None = None) -> float:
    """||A|| = sqrt(||A*A||) by power iteration on A*A (one sample)."""
    generator = generator or torch.Generator().manual_seed(0)
    x = torch.randn((1, *op.image_shape), dtype=dtype, generator=generator)
    if op.batch_size:
        x = x.expand(op.batch_size, *op.image_shape).contiguous()
    lam = torch.zeros(())
    with torch.no_grad():
        for _ in range(n_iter):
            x = x / x.flatten(1).norm(dim=1).view(-1, *[1] * (x.dim() - 1))
            z = op.normal(x)
            lam = (z * x).flatten(1).sum(1).max()
            x = z
    return float(lam.sqrt())


# ------------------------------------------------------------------------------------------ masks and coils
def cartesian_mask(size: int | tuple[int, int], acceleration: float = 4, center_fraction: float = 0.08,
                   kind: str = "random", generator: torch.Generator | None = None) -> torch.Tensor:
    """A Cartesian undersampling mask (H, W) of sampled columns (last dim), drawn with MONAI's
    ``RandomKspaceMask`` / ``EquispacedKspaceMask`` (fastMRI semantics): round(W * center_fraction) centre
    columns always kept, the others at random (``kind="random"``) or equally spaced (``"equispaced"``) so that
    about W / acceleration columns are sampled. ``generator`` seeds MONAI's random state."""
    h, w = (size, size) if isinstance(size, int) else size
    if acceleration < 1:
        raise ValueError(f"acceleration must be >= 1, got {acceleration}")
    if acceleration > 1 and not 0 < center_fraction * acceleration <= 1:
        raise ValueError(f"center_fraction={center_fraction} with acceleration={acceleration} keeps more centre "
                         "columns than the acceleration allows; use center_fraction <= 1 / acceleration")
    kinds = {"random": RandomKspaceMask, "equispaced": EquispacedKspaceMask}
    if kind not in kinds:
        raise ValueError(f"kind={kind!r}; use 'random' or 'equispaced'")
    if acceleration == 1:
        return torch.ones(h, w)
    transform = kinds[kind]([center_fraction], [acceleration], spatial_dims=2, is_complex=True)
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    transform.set_random_state(seed=seed)
    transform(torch.zeros(1, h, w, 2))
    return transform.mask.reshape(1, w).expand(h, w).to(torch.float32).clone()


def birdcage_maps(n_coils: int, size: int | tuple[int, int], r: float = 1.5) -> torch.Tensor:
    """Birdcage coil sensitivities (complex64 (N, H, W)), normalised so Σ_c |S_c|² = 1 at every pixel.

    Coil c sits at (r cos(2πc/N), r sin(2πc/N)) in coordinates where the image spans [-1, 1]²; with (x_c, y_c)
    the pixel's offset from it, S_c = exp(i(atan2(x_c, -y_c) - 2πc/N)) / sqrt(x_c² + y_c²) (the sigpy formula).
    """
    h, w = (size, size) if isinstance(size, int) else size
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h, dtype=torch.float64),
                            torch.linspace(-1, 1, w, dtype=torch.float64), indexing="ij")
    maps = []
    for c in range(n_coils):
        phi = 2 * math.pi * c / n_coils
        xc, yc = xx - r * math.cos(phi), yy - r * math.sin(phi)
        rho = torch.sqrt(xc**2 + yc**2)
        maps.append(torch.polar(1 / rho, torch.atan2(xc, -yc) - phi))
    maps = torch.stack(maps)
    return (maps / maps.abs().pow(2).sum(0).sqrt()).to(torch.complex64)
