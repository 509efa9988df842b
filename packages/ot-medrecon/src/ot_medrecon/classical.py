"""Classical references (no training): |S(y)| (zero-filled / FBP) and the compressed-sensing data-consistent
total-variation (TV) reconstruction.

For operators with A A* = I on the measured entries (single-coil Cartesian MRI), the constrained problem

    min_x TV_ε(x)  subject to  A x = y   (measured k-space kept exactly; noise included)

is solved by projected gradient descent started at S(y) = A* y: x ← x − τ (I − A*A) ∇TV_ε(x), which keeps the
measured samples of A* y and only fills the unmeasured k-space. TV_ε(x) = Σ_pixels sqrt(|∇x|² + ε²) with forward
differences (zero at the last row / column) summed over the real / imaginary channels, so the phase of the complex
image is regularised too. ‖∇²TV_ε‖ ≤ 8 / ε, hence the step τ = ``step`` · ε with ``step`` < 0.25 is stable.
"""

from __future__ import annotations

import torch

from .physics import LinearOperator, magnitude

__all__ = ["START_IMAGES", "check_start", "classical_reconstruction", "initial_image", "tv_gradient",
           "tv_reconstruction"]

#: Images a reconstruction can start from: S(y) (zero-filled / FBP) or the TV reconstruction (single-coil MRI).
START_IMAGES = ("measurement", "tv")


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
    if not operator.partial_isometry:
        raise ValueError(f"tv_reconstruction needs an operator with A A* = I (e.g. SingleCoilMRI); "
                         f"{type(operator).__name__} is not one")
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


def check_start(start: str) -> str:
    """``start`` if it names one of :data:`START_IMAGES`, else a ValueError naming the choices."""
    if start not in START_IMAGES:
        raise ValueError(f"start={start!r}; use 'measurement' (S(y) = A* y / FBP) or 'tv' (single-coil MRI)")
    return start


def initial_image(y: torch.Tensor, operator: LinearOperator, start: str = "measurement") -> torch.Tensor:
    """The state a reconstruction starts from (B, C, H, W): S(y) for ``start="measurement"``, the TV image for
    ``start="tv"``."""
    check_start(start)
    return tv_reconstruction(y, operator) if start == "tv" else operator.start(y)


def classical_reconstruction(y: torch.Tensor, operator: LinearOperator, start: str = "measurement") -> torch.Tensor:
    """|S(y)|, the zero-filled (MRI, SENSE-combined for multi-coil) or FBP (CT) image, or with ``start="tv"``
    the magnitude of the TV reconstruction: (B, 1, H, W), no gradients."""
    operator.check_measurement(y)
    with torch.no_grad():
        return magnitude(initial_image(y, operator, start))
