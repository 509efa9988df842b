"""Classical references (no training): |S(y)| (zero-filled / FBP), the compressed-sensing data-consistent
total-variation (TV) reconstruction and its phase-constrained variant.

For operators with A A* = I on the measured entries (single-coil Cartesian MRI), the constrained problem

    min_x TV_ε(x)  subject to  A x = y   (measured k-space kept exactly; noise included)

is solved by projected gradient descent started at S(y) = A* y: x ← x − τ (I − A*A) ∇TV_ε(x), which keeps the
measured samples of A* y and only fills the unmeasured k-space. TV_ε(x) = Σ_pixels sqrt(|∇x|² + ε²) with forward
differences (zero at the last row / column) summed over the real / imaginary channels, so the phase of the complex
image is regularised too. ‖∇²TV_ε‖ ≤ 8 / ε, hence the step τ = ``step`` · ε with ``step`` < 0.25 is stable.

The phase-constrained TV reconstruction adds the MR-physics knowledge that the object is a real, non-negative
magnitude m times a smooth phase (the partial-Fourier / homodyne assumption; Haacke et al. 1991, Lustig et al.
2007). The phase φ̂ is that of a low-pass filtered TV reconstruction, then FISTA solves

    min_{m >= 0}  ½ ‖A(m e^{iφ̂}) − y‖² + λ TV_ε(m)

with half the unknowns of the complex problem: the conjugate symmetry of the real m fills k-space lines whose mirror
line was measured.
"""

from __future__ import annotations

import math

import torch

from .physics import LinearOperator, fft2c, ifft2c, magnitude, to_channels, to_complex

__all__ = ["START_IMAGES", "check_start", "classical_reconstruction", "initial_image", "low_resolution_phase",
           "phase_constrained_tv", "tv_gradient", "tv_reconstruction"]

#: Images a reconstruction can start from: S(y) (zero-filled / FBP), the TV reconstruction or the
#: phase-constrained TV reconstruction (both single-coil Cartesian MRI).
START_IMAGES = ("measurement", "tv", "phase_tv")


def _check_single_coil(operator: LinearOperator, name: str) -> None:
    if not operator.partial_isometry:
        raise ValueError(f"{name} needs an operator with A A* = I (e.g. SingleCoilMRI); "
                         f"{type(operator).__name__} is not one")


def tv_gradient(x: torch.Tensor, eps: float) -> torch.Tensor:
    """∇TV_ε(x) for x (B, C, H, W) (channels share the gradient magnitude: isotropic vector TV), same shape."""
    dh = torch.zeros_like(x)
    dw = torch.zeros_like(x)
    dh[..., :-1, :] = x[..., 1:, :] - x[..., :-1, :]
    dw[..., :, :-1] = x[..., :, 1:] - x[..., :, :-1]
    norm = (dh.pow(2).sum(1, keepdim=True) + dw.pow(2).sum(1, keepdim=True) + eps**2).sqrt()
    ph, pw = dh / norm, dw / norm
    grad = -ph - pw  # adjoint of the forward differences: p[i-1] - p[i]
    grad[..., 1:, :] += ph[..., :-1, :]
    grad[..., :, 1:] += pw[..., :, :-1]
    return grad


def tv_reconstruction(y: torch.Tensor, operator: LinearOperator, n_iter: int = 100, eps: float = 0.02,
                      step: float = 0.24) -> torch.Tensor:
    """The data-consistent TV image as a state (B, 2, H, W) (real / imaginary channels); no gradients.

    ``n_iter`` projected gradient steps of size ``step`` · ``eps`` (``step`` < 0.25) from A* y; ``eps``: the TV
    smoothing in image intensity units (images in [0, 1])."""
    _check_single_coil(operator, "tv_reconstruction")
    if not 0 < step < 0.25:
        raise ValueError(f"step must be in (0, 0.25) for a stable descent, got {step}")
    if eps <= 0 or n_iter < 0:
        raise ValueError(f"eps must be > 0 and n_iter >= 0, got eps={eps}, n_iter={n_iter}")
    operator.check_measurement(y)
    with torch.no_grad():
        x = operator.start(y)
        for _ in range(n_iter):
            g = tv_gradient(x, eps)
            x = x - step * eps * (g - operator.normal(g))
    return x


def low_resolution_phase(y: torch.Tensor, operator: LinearOperator, width: float = 2.0) -> torch.Tensor:
    """The smooth image phase φ̂ (B, H, W) in radians: the phase of the TV reconstruction of ``y`` (B, 2, H, W)
    low-pass filtered by a Gaussian k-space window of standard deviation ``width`` samples. The TV image, not the
    centre columns alone, so that a narrow fully sampled centre (3 columns at 32² and 4x) still gives the phase in
    both directions."""
    _check_single_coil(operator, "low_resolution_phase")
    if width <= 0:
        raise ValueError(f"width must be > 0 k-space samples, got {width}")
    kspace = fft2c(to_complex(tv_reconstruction(y, operator)))
    rows, cols = (torch.arange(n, dtype=y.dtype, device=y.device) - n // 2 for n in kspace.shape[-2:])
    window = torch.exp(-(rows[:, None] ** 2 + cols[None] ** 2) / (2 * width**2))
    return torch.angle(ifft2c(kspace * window))


def phase_constrained_tv(y: torch.Tensor, operator: LinearOperator, weight: float = 0.01, eps: float = 0.01,
                         n_iter: int = 100, phase_width: float = 2.0) -> torch.Tensor:
    """The phase-constrained TV image m e^{iφ̂} as a state (B, 2, H, W) (real / imaginary channels); no gradients.

    ``n_iter`` FISTA steps (step 1 / (1 + 8 ``weight`` / ``eps``)) on ½‖A(m e^{iφ̂}) − y‖² + ``weight`` TV_ε(m),
    m >= 0, from m = max(Re(e^{−iφ̂} A* y), 0); φ̂ from :func:`low_resolution_phase` with ``width=phase_width``.
    ``weight`` and ``eps`` are in image intensity units (images in [0, 1]); the measured samples are fitted, not
    kept exactly (noise). Defaults chosen on S_val of the gap protocol (BENCHMARKS.md section 2.4)."""
    _check_single_coil(operator, "phase_constrained_tv")
    if weight <= 0 or eps <= 0 or n_iter < 0:
        raise ValueError(f"weight and eps must be > 0 and n_iter >= 0, got weight={weight}, eps={eps}, "
                         f"n_iter={n_iter}")
    with torch.no_grad():
        rotation = torch.exp(1j * low_resolution_phase(y, operator, phase_width))  # (B, H, W), y's precision

        def to_state(m: torch.Tensor) -> torch.Tensor:
            return to_channels(m[:, 0] * rotation)

        def derotate(state: torch.Tensor) -> torch.Tensor:  # Re(e^{-iφ̂} x) as (B, 1, H, W)
            return (to_complex(state) * rotation.conj()).real[:, None]

        step = 1.0 / (1.0 + 8.0 * weight / eps)
        m = derotate(operator.start(y)).clamp_min(0)
        previous, momentum, t = m, m, 1.0
        for _ in range(n_iter):
            residual = operator.A(to_state(momentum)) - y
            grad = derotate(operator.A_adjoint(residual)) + weight * tv_gradient(momentum, eps)
            m = (momentum - step * grad).clamp_min(0)
            t_next = (1 + math.sqrt(1 + 4 * t * t)) / 2
            momentum = m + (t - 1) / t_next * (m - previous)
            previous, t = m, t_next
        return to_state(m)


def check_start(start: str) -> str:
    """``start`` if it names one of :data:`START_IMAGES`, else a ValueError naming the choices."""
    if start not in START_IMAGES:
        raise ValueError(f"start={start!r}; use 'measurement' (S(y) = A* y / FBP), 'tv' or 'phase_tv' "
                         "(single-coil Cartesian MRI)")
    return start


def initial_image(y: torch.Tensor, operator: LinearOperator, start: str = "measurement") -> torch.Tensor:
    """The state a reconstruction starts from (B, C, H, W): S(y) for ``start="measurement"``, the TV image for
    ``start="tv"``, the phase-constrained TV image for ``start="phase_tv"`` (defaults of each function)."""
    check_start(start)
    if start == "tv":
        return tv_reconstruction(y, operator)
    if start == "phase_tv":
        return phase_constrained_tv(y, operator)
    return operator.start(y)


def classical_reconstruction(y: torch.Tensor, operator: LinearOperator, start: str = "measurement") -> torch.Tensor:
    """|S(y)|, the zero-filled (MRI, SENSE-combined for multi-coil) or FBP (CT) image, or with ``start="tv"`` /
    ``"phase_tv"`` the magnitude of the (phase-constrained) TV reconstruction: (B, 1, H, W), no gradients."""
    operator.check_measurement(y)
    with torch.no_grad():
        return magnitude(initial_image(y, operator, start))
