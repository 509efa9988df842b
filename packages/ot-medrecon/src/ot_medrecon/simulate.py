"""Acquisition simulators: the *nominal* (retrospective) forward model used to make training pairs, and a
*prospective* ("true") model with the physics the nominal one leaves out, at severity levels L0–L3.

Each simulator is called as ``sim(images, generator) -> dict(y, gt, operator, meta)`` on clean images
(B, 1, H', W') in [0, 1] of any size >= the working ``size`` (they are area-resized; the 2x-grid components
use the 2x image). ``operator`` is the *nominal* operator of each acquisition (the mask / geometry is known at
acquisition time, as on a scanner); ``gt`` the reference image at the working size.

MRI levels (``ProspectiveMRI``): L1 smooth phase up to π/4 and 30 dB complex k-space noise; L2 phase π/2, 25 dB,
off-resonance up to 30 Hz (readout along H, 5 ms), generation on a 2x grid; L3 phase π, 20 dB, 60 Hz, 2x grid,
rigid motion on 5 % of the sampled lines. CT levels (``ProspectiveCT``): L1 log-Poisson with N0 = 2e4 photons;
L2 N0 = 1e4, centre-of-rotation offset 1 bin (at 64 px), beam hardening 0.02; L3 N0 = 5e3, COR 2 bins, hardening 0.05,
1 % scatter, 2x grid. (Project design, see the package README; the paper's protocol is not public.)
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace

import torch
from monai.transforms import MapTransform, Randomizable

from .datasets import area_resize, ellipse_phantoms
from .physics import (MultiCoilMRI, ParallelBeamCT, SingleCoilMRI, birdcage_maps, cartesian_mask, fft2c,
                      ifft2c, to_channels)

__all__ = [
    "MRIGap",
    "CTGap",
    "MRI_LEVELS",
    "CT_LEVELS",
    "NominalMRI",
    "ProspectiveMRI",
    "NominalCT",
    "ProspectiveCT",
    "SimulateMeasurementd",
    "default_center_fraction",
]


def default_center_fraction(acceleration: float) -> float:
    """fastMRI's pairing: 0.08 at 4x, 0.04 at 8x (0.32 / acceleration)."""
    return 0.32 / acceleration


def _uniform(shape, lo, hi, generator, dtype=torch.float64):
    return lo + (hi - lo) * torch.rand(shape, dtype=dtype, generator=generator)


def _grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    c = torch.linspace(-1, 1, size, dtype=torch.float64)
    return torch.meshgrid(c, c, indexing="ij")


# ------------------------------------------------------------------------------------------ MRI
@dataclass(frozen=True)
class MRIGap:
    """Components of the prospective MRI acquisition that the nominal model omits (0 / False = absent)."""

    phase_max: float = 0.0  # radians, smooth quadratic phase
    snr_db: float | None = None  # complex Gaussian k-space noise
    off_resonance_hz: float = 0.0  # peak of the field map
    fine_grid: bool = False  # generate on a 2x grid, keep the centre of k-space
    motion_fraction: float = 0.0  # fraction of sampled non-centre lines with a rigid shift U(-1, 1) px
    readout_ms: float = 5.0


MRI_LEVELS = {
    0: MRIGap(),
    1: MRIGap(phase_max=math.pi / 4, snr_db=30.0),
    2: MRIGap(phase_max=math.pi / 2, snr_db=25.0, off_resonance_hz=30.0, fine_grid=True),
    3: MRIGap(phase_max=math.pi, snr_db=20.0, off_resonance_hz=60.0, fine_grid=True, motion_fraction=0.05),
}


def smooth_phase(batch: int, size: int, phase_max: float, generator) -> torch.Tensor:
    """φ = φ_max P / max|P| with P = Σ_{p+q<=2} c_pq u^p v^q, c_pq ~ U(-1, 1): (B, size, size) radians."""
    u, v = _grid(size)
    monomials = torch.stack([u**p * v**q for p in range(3) for q in range(3 - p)])
    coef = _uniform((batch, len(monomials)), -1, 1, generator)
    poly = torch.einsum("bm,mhw->bhw", coef, monomials)
    return phase_max * poly / poly.flatten(1).abs().amax(1).clamp_min(1e-12).view(-1, 1, 1)


def field_map(batch: int, size: int, peak_hz: float, generator) -> torch.Tensor:
    """Δf = Δf_max Q / max|Q|, Q = random linear ramp + two Gaussian bumps (width 0.3, random signs): (B, H, W) Hz."""
    u, v = _grid(size)
    ramp = _uniform((batch, 3), -1, 1, generator)
    q = ramp[:, :1, None] + ramp[:, 1:2, None] * u + ramp[:, 2:3, None] * v
    for _ in range(2):
        r, a = 0.5 * _uniform((batch, 1, 1), 0, 1, generator).sqrt(), _uniform((batch, 1, 1), 0, 2 * math.pi, generator)
        sign = torch.where(_uniform((batch, 1, 1), 0, 1, generator) < 0.5, -1.0, 1.0).to(torch.float64)
        q = q + sign * torch.exp(-((u - r * torch.cos(a)) ** 2 + (v - r * torch.sin(a)) ** 2) / (2 * 0.3**2))
    return peak_hz * q / q.flatten(1).abs().amax(1).clamp_min(1e-12).view(-1, 1, 1)


def _crop_kspace(k: torch.Tensor, size: int) -> torch.Tensor:
    """Centre size x size of a (..., 2size, 2size) centred k-space, scaled by 1/2 (unitary FFTs at both sizes)."""
    lo = (k.shape[-1] - size) // 2
    return k[..., lo:lo + size, lo:lo + size] / 2


class NominalMRI:
    """The retrospective model: a real magnitude image, single coil, centred unitary FFT on the working grid,
    a Cartesian mask (MONAI semantics), no noise. ``coil_maps`` (complex (N, H, W)) switches to multi-coil."""

    def __init__(self, size: int, acceleration: float = 4, center_fraction: float | None = None,
                 mask_kind: str = "random", coil_maps: torch.Tensor | None = None):
        self.size, self.acceleration, self.mask_kind = size, acceleration, mask_kind
        self.center_fraction = center_fraction or default_center_fraction(acceleration)
        self.coil_maps = coil_maps

    gap = MRIGap()

    def masks(self, batch: int, generator) -> torch.Tensor:
        return torch.stack([cartesian_mask(self.size, self.acceleration, self.center_fraction, self.mask_kind,
                                           generator) for _ in range(batch)])

    def operator(self, masks: torch.Tensor):
        if self.coil_maps is None:
            return SingleCoilMRI(masks)
        return MultiCoilMRI(masks, self.coil_maps)

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        _check_images(images, self.size)
        masks = self.masks(images.shape[0], generator)
        op = self.operator(masks)
        gap = self.gap
        source = area_resize(images.double(), 2 * self.size if gap.fine_grid else self.size)[:, 0]
        batch, n_src = source.shape[0], source.shape[-1]
        image = source.to(torch.complex128)
        if gap.phase_max:
            image = image * torch.exp(1j * smooth_phase(batch, n_src, gap.phase_max, generator))
        if self.coil_maps is not None:
            maps = self.coil_maps.to(torch.complex128)
            if gap.fine_grid:
                maps = torch.view_as_complex(torch.nn.functional.interpolate(
                    torch.view_as_real(maps).movedim(-1, 0), size=(n_src, n_src), mode="bilinear",
                    align_corners=True).movedim(0, -1).contiguous())
            image = image[:, None] * maps[None]  # (B, N, H', W')
        else:
            image = image[:, None]
        kspace = self._kspace(image, generator)
        kspace = self._motion(kspace, masks, generator)
        clean = kspace * masks[:, None].to(kspace.dtype)
        noisy = clean + self._noise(clean, masks, generator)
        y = to_channels(noisy if self.coil_maps is not None else noisy[:, 0]).float()
        gt = area_resize(images.float(), self.size)
        if gap.fine_grid:
            gt = ifft2c(_crop_kspace(fft2c(source.to(torch.complex128)), self.size)).abs()[:, None].float()
        return {"y": y, "gt": gt, "operator": op, "mask": masks, "meta": {"gap": gap}}

    def _kspace(self, image: torch.Tensor, generator) -> torch.Tensor:
        """Centred k-space (B, N, H, W) on the working grid; off-resonance modulates each readout row."""
        gap, size = self.gap, self.size
        if not gap.off_resonance_hz:
            k = fft2c(image)
            return _crop_kspace(k, size) if gap.fine_grid else k
        n_src = image.shape[-1]
        df = field_map(image.shape[0], n_src, gap.off_resonance_hz, generator)
        t = (torch.arange(size, dtype=torch.float64) - size / 2) * gap.readout_ms * 1e-3 / size  # (H,) seconds
        phase = torch.exp(-2j * math.pi * df[:, None] * t.view(1, -1, 1, 1))  # (B, H rows, H', W')
        rows = []
        for j in range(size):  # row j of k-space is read at time t_j
            k = fft2c(image * phase[:, None, j])
            k = _crop_kspace(k, size) if gap.fine_grid else k
            rows.append(k[..., j, :])
        return torch.stack(rows, dim=-2)

    def _motion(self, kspace: torch.Tensor, masks: torch.Tensor, generator) -> torch.Tensor:
        """Rigid in-plane shifts δ ~ U(-1, 1)² px on a fraction of the sampled non-centre columns."""
        if not self.gap.motion_fraction:
            return kspace
        size = self.size
        freq = torch.arange(size, dtype=torch.float64) - size // 2
        n_centre = int(round(size * self.center_fraction))
        centre = torch.zeros(size, dtype=torch.bool)
        centre[(size - n_centre + 1) // 2:(size - n_centre + 1) // 2 + n_centre] = True
        out = kspace.clone()
        for b in range(kspace.shape[0]):
            lines = torch.nonzero((masks[b, 0] > 0) & ~centre).flatten()
            n_moved = int(round(self.gap.motion_fraction * len(lines)))
            pick = lines[torch.randperm(len(lines), generator=generator)[:n_moved]]
            for col in pick.tolist():
                du, dv = _uniform(2, -1, 1, generator).tolist()
                ramp = torch.exp(-2j * math.pi * (freq * dv + freq[col] * du) / size)  # rows: v, column: u
                out[b, :, :, col] = out[b, :, :, col] * ramp
        return out

    def _noise(self, clean: torch.Tensor, masks: torch.Tensor, generator) -> torch.Tensor:
        """Complex Gaussian noise on measured entries, σ² = mean_measured |y|² / (2 · 10^(SNR/10))."""
        if self.gap.snr_db is None:
            return torch.zeros_like(clean)
        m = masks[:, None].to(torch.float64).expand_as(clean.real)
        power = (clean.abs() ** 2 * m).flatten(1).sum(1) / m.flatten(1).sum(1)
        sigma = (power / (2 * 10 ** (self.gap.snr_db / 10))).sqrt().view(-1, 1, 1, 1)
        noise = torch.complex(torch.randn(clean.shape, dtype=torch.float64, generator=generator),
                              torch.randn(clean.shape, dtype=torch.float64, generator=generator))
        return sigma * noise * m


class ProspectiveMRI(NominalMRI):
    """The "true" MRI acquisition at ``level`` 0–3 (:data:`MRI_LEVELS`); keyword ``components`` replace single
    fields of the level's :class:`MRIGap` (e.g. ``components={"snr_db": None}`` to drop the noise)."""

    def __init__(self, size: int, level: int = 3, acceleration: float = 4, center_fraction: float | None = None,
                 mask_kind: str = "random", coil_maps: torch.Tensor | None = None,
                 components: dict | None = None):
        super().__init__(size, acceleration, center_fraction, mask_kind, coil_maps)
        if level not in MRI_LEVELS:
            raise ValueError(f"level={level!r}; use one of {sorted(MRI_LEVELS)}")
        self.level = level
        self.gap = replace(MRI_LEVELS[level], **(components or {}))


# ------------------------------------------------------------------------------------------ CT
@dataclass(frozen=True)
class CTGap:
    """Components of the prospective CT acquisition that the nominal model omits."""

    photons: float | None = None  # N0 of log-Poisson counts (None: the nominal Gaussian noise)
    cor_offset: float = 0.0  # centre-of-rotation offset in detector bins of a 64-px image (scaled with size)
    beam_hardening: float = 0.0  # γ in p' = p - γ p²
    scatter: float = 0.0  # scatter fraction s: counts ~ Poisson(N0 e^{-p'} + s N0)
    fine_grid: bool = False  # project the 2x image with the 2x operator, average detector pairs


CT_LEVELS = {
    0: CTGap(),
    1: CTGap(photons=2e4),
    2: CTGap(photons=1e4, cor_offset=1.0, beam_hardening=0.02),
    3: CTGap(photons=5e3, cor_offset=2.0, beam_hardening=0.05, scatter=0.01, fine_grid=True),
}


class NominalCT:
    """The retrospective CT model: normalised parallel-beam strip projector with ``views`` angles over [0°, 180°)
    and white Gaussian sinogram noise at ``snr_db`` (relative to each sinogram's RMS)."""

    gap = CTGap()

    def __init__(self, size: int, views: int = 60, snr_db: float | None = 40.0):
        self.size, self.views, self.snr_db = size, views, snr_db
        self.operator = ParallelBeamCT(size, views)

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        _check_images(images, self.size)
        gt = area_resize(images.float(), self.size)
        y = self.operator.A(gt.double())
        if self.snr_db is not None:
            rms = y.flatten(1).pow(2).mean(1).sqrt().view(-1, 1, 1, 1)
            y = y + rms * 10 ** (-self.snr_db / 20) * torch.randn(y.shape, dtype=y.dtype, generator=generator)
        return {"y": y.float(), "gt": gt, "operator": self.operator, "meta": {"gap": self.gap}}


@functools.lru_cache(maxsize=8)
def _calibrated_kappa(size: int, views: int) -> float:
    """κ such that the 99th percentile of κ · (line integrals in pixel units) over ellipse phantoms is 2.5."""
    raw = ParallelBeamCT(size, views, normalize=False)
    p = raw.A(ellipse_phantoms(16, size, seed=40_000).double())
    return 2.5 / float(torch.quantile(p.flatten(), 0.99))


class ProspectiveCT(NominalCT):
    """The "true" CT acquisition at ``level`` 0–3 (:data:`CT_LEVELS`): photon counts N ~ Poisson(N0 e^{-p'} +
    s N0) with p' = p - γ p² and p = κ · (line integrals), y = -log(max(N, 1) / N0) / κ, COR offset, 2x grid.
    ``dose`` multiplies N0 (low dose: 0.1). ``kappa`` (attenuation per pixel length) defaults to a
    calibration on ellipse phantoms (99th percentile of κ p = 2.5)."""

    def __init__(self, size: int, level: int = 3, views: int = 60, dose: float = 1.0, snr_db: float | None = 40.0,
                 kappa: float | None = None, components: dict | None = None):
        super().__init__(size, views, snr_db)
        if level not in CT_LEVELS:
            raise ValueError(f"level={level!r}; use one of {sorted(CT_LEVELS)}")
        if dose <= 0:
            raise ValueError(f"dose must be > 0, got {dose}")
        self.level, self.dose = level, dose
        self.gap = replace(CT_LEVELS[level], **(components or {}))
        self.kappa = kappa or _calibrated_kappa(size, views)

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        gap = self.gap
        if gap.photons is None and not (gap.cor_offset or gap.fine_grid or gap.beam_hardening):
            return super().__call__(images, generator)
        _check_images(images, self.size)
        factor = 2 if gap.fine_grid else 1
        true_op = ParallelBeamCT(self.size * factor, self.views, n_detectors=self.operator.n_detectors * factor,
                                 cor_offset=gap.cor_offset * factor * self.size / 64, normalize=False)
        p = true_op.A(area_resize(images.double(), self.size * factor))  # pixel-length units of the fine grid
        if factor == 2:
            p = p.reshape(p.shape[0], 1, -1, 2, self.views).mean(3) / 2  # detector pairs, working pixel units
        mu = self.kappa * p
        mu = mu - gap.beam_hardening * mu**2
        if gap.photons is None:
            y = mu / self.kappa
        else:
            n0 = gap.photons * self.dose
            counts = torch.poisson(n0 * torch.exp(-mu) + gap.scatter * n0, generator=generator)
            y = -torch.log(counts.clamp_min(1) / n0) / self.kappa
        gt = area_resize(images.float(), self.size)
        return {"y": (y / self.operator.scale).float(), "gt": gt, "operator": self.operator,
                "meta": {"gap": gap, "kappa": self.kappa, "dose": self.dose}}


# ------------------------------------------------------------------------------------------ checks, transform
def _check_images(images: torch.Tensor, size: int) -> None:
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 1:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a tensor (B, 1, H, W), got {shape}")
    if images.is_complex():
        raise TypeError("images must be real magnitude images in [0, 1]; the simulator adds the phase")
    if images.shape[-1] < size or images.shape[-2] != images.shape[-1]:
        raise ValueError(f"images must be square and at least {size} px (the working size), got "
                         f"{tuple(images.shape[-2:])}")
    if not torch.isfinite(images).all():
        raise ValueError("images contain NaN or Inf values")


class SimulateMeasurementd(MapTransform, Randomizable):
    """MONAI dictionary transform: ``d[prefix + "y"]``, ``d[prefix + "gt"]`` (and ``d[prefix + "mask"]`` for
    MRI) from the image ``d[key]`` (1, H, W) with ``simulator``; seeded with ``set_random_state(seed)``."""

    def __init__(self, keys, simulator, prefix: str = "meas_", allow_missing_keys: bool = False):
        MapTransform.__init__(self, keys, allow_missing_keys)
        self.simulator, self.prefix = simulator, prefix

    def __call__(self, data):
        d = dict(data)
        for key in self.key_iterator(d):
            generator = torch.Generator().manual_seed(int(self.R.randint(0, 2**31 - 1)))
            image = torch.as_tensor(d[key], dtype=torch.float32)
            out = self.simulator(image[None], generator)
            d[self.prefix + "y"], d[self.prefix + "gt"] = out["y"][0], out["gt"][0]
            if "mask" in out:
                d[self.prefix + "mask"] = out["mask"][0]
        return d
