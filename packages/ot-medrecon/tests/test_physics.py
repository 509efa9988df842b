"""Forward operators: adjointness, norms, FFT convention, masks, coil maps, CT projector against closed forms."""

import math

import numpy as np
import pytest
import torch
from ot_medrecon.datasets import shepp_logan
from ot_medrecon.physics import (MultiCoilMRI, ParallelBeamCT, SingleCoilMRI, birdcage_maps, cartesian_mask,
                                 check_adjoint, fft2c, from_monai_complex, ifft2c, magnitude, operator_norm,
                                 to_monai_complex)


def _masks(n, size=16, acceleration=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.stack([cartesian_mask(size, acceleration, 0.125, generator=g) for _ in range(n)])


OPERATORS = {
    "single-coil full": lambda: SingleCoilMRI(torch.ones(16, 16)),
    "single-coil masked per sample": lambda: SingleCoilMRI(_masks(3)),
    "multi-coil masked": lambda: MultiCoilMRI(_masks(2), birdcage_maps(4, 16)),
    "multi-coil per-sample maps": lambda: MultiCoilMRI(_masks(2), birdcage_maps(3, 16)[None].expand(2, -1, -1, -1)),
    "ct 60 views": lambda: ParallelBeamCT(16, 60),
    "ct 7 views cor offset": lambda: ParallelBeamCT(12, 7, cor_offset=1.5),
    "ct arbitrary angles unnormalised": lambda: ParallelBeamCT(10, torch.tensor([0.0, 13.0, 45.0, 90.0, 171.0]),
                                                               normalize=False),
}


@pytest.mark.parametrize("name", OPERATORS)
def test_adjoint_float64(name):
    assert check_adjoint(OPERATORS[name](), torch.float64, n_trials=3) < 1e-10


@pytest.mark.parametrize("name", OPERATORS)
def test_adjoint_float32(name):
    assert check_adjoint(OPERATORS[name](), torch.float32, n_trials=3) < 1e-5


def test_check_adjoint_detects_a_wrong_adjoint():
    class Wrong(SingleCoilMRI):
        def A_adjoint(self, y):  # noqa: N802 - forgets the mask and conjugates wrongly
            return super().A_adjoint(y).flip(-1)

    assert check_adjoint(Wrong(_masks(2)), torch.float64) > 1e-2


def test_operator_norms():
    assert operator_norm(SingleCoilMRI(torch.ones(16, 16))) == pytest.approx(1.0, abs=1e-6)
    assert operator_norm(SingleCoilMRI(_masks(2))) <= 1.0 + 1e-9
    assert operator_norm(MultiCoilMRI(torch.ones(16, 16), birdcage_maps(4, 16))) == pytest.approx(1.0, abs=1e-4)
    assert operator_norm(ParallelBeamCT(16, 30)) == pytest.approx(1.0, abs=1e-3)


def test_fft_is_unitary_and_matches_numpy_centred_convention():
    g = torch.Generator().manual_seed(1)
    z = torch.complex(torch.randn(2, 12, 10, generator=g), torch.randn(2, 12, 10, generator=g))
    k = fft2c(z)
    assert torch.allclose(k.abs().pow(2).sum(), z.abs().pow(2).sum(), rtol=1e-5)
    assert torch.allclose(ifft2c(k), z, atol=1e-6)
    ref = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(z.numpy(), axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    assert np.allclose(k.numpy(), ref, atol=1e-5)


def test_monai_layout_round_trip():
    x = torch.randn(2, 2, 5, 6)
    assert to_monai_complex(x).shape == (2, 5, 6, 2)
    assert torch.equal(from_monai_complex(to_monai_complex(x)), x)


def test_magnitude_has_finite_gradient_at_zero():
    x = torch.zeros(1, 2, 3, 3, requires_grad=True)
    magnitude(x).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_random_mask_statistics():
    g = torch.Generator().manual_seed(0)
    masks = torch.stack([cartesian_mask(64, 4, 0.08, generator=g) for _ in range(200)])
    assert masks.mean().item() == pytest.approx(0.25, abs=0.02)
    n_centre = round(64 * 0.08)
    centre = slice((64 - n_centre + 1) // 2, (64 - n_centre + 1) // 2 + n_centre)
    assert bool((masks[:, :, centre] == 1).all())
    assert bool((masks == masks[:, :1]).all())  # whole columns (Cartesian lines along H)


def test_equispaced_mask_and_seeding():
    a = cartesian_mask(32, 4, 0.08, "equispaced", torch.Generator().manual_seed(3))
    b = cartesian_mask(32, 4, 0.08, "equispaced", torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and 0.2 < a.mean() < 0.35


def test_birdcage_maps_are_normalised_and_distinct():
    maps = birdcage_maps(8, 32)
    assert torch.allclose(maps.abs().pow(2).sum(0), torch.ones(32, 32), atol=1e-5)
    assert (maps[0].abs() - maps[4].abs()).abs().max() > 0.1


def test_single_coil_zero_filled_matches_deep_admm_net_convention():
    """Deep-ADMM-Net: y = fft2(img) * ifftshift(mask), zero-filled = |ifft2(y)|, with a centred mask."""
    img = shepp_logan(32)[0, 0].double()
    mask = torch.zeros(32, 32)
    mask[::3] = 1
    mask[12:20, 12:20] = 1
    ours = magnitude(SingleCoilMRI(mask).start(SingleCoilMRI(mask).A(torch.stack([img, 0 * img])[None].double())))
    ref = np.abs(np.fft.ifft2(np.fft.fft2(img.numpy()) * np.fft.ifftshift(mask.numpy())))
    assert np.allclose(ours[0, 0].numpy(), ref, atol=1e-10)


def test_ct_row_sums_are_pixel_areas():
    """Every pixel's strip weights over the detector sum to its area (1) in every view."""
    op = ParallelBeamCT(12, 9, normalize=False)
    sino = op.A(torch.ones(1, 1, 12, 12, dtype=torch.float64))
    assert torch.allclose(sino.sum(2), torch.full((1, 1, 9), 144.0, dtype=torch.float64))


def _rectangle_chord(u, theta, x_range, y_range):
    """Length of the line {x cos θ + y sin θ = u} inside the rectangle x_range × y_range (slab clipping)."""
    n, d = (math.cos(theta), math.sin(theta)), (-math.sin(theta), math.cos(theta))
    lo, hi = torch.full_like(u, -1e9), torch.full_like(u, 1e9)
    for axis, (a, b) in enumerate((x_range, y_range)):
        if abs(d[axis]) < 1e-12:
            inside = (u * n[axis] >= a) & (u * n[axis] <= b)
            hi = torch.where(inside, hi, torch.full_like(hi, -1e9))
            continue
        t1, t2 = (a - u * n[axis]) / d[axis], (b - u * n[axis]) / d[axis]
        lo, hi = torch.maximum(lo, torch.minimum(t1, t2)), torch.minimum(hi, torch.maximum(t1, t2))
    return (hi - lo).clamp_min(0)


@pytest.mark.parametrize("angle", [0.0, 23.0, 45.0, 90.0, 131.0])
def test_ct_projection_of_a_rectangle_is_the_exact_strip_integral(angle):
    """A block of pixels is piecewise constant, so the strip model must equal the bin average of the exact chord
    length of the rectangle (computed independently by line clipping, 4000 samples per bin)."""
    n = 48
    x = torch.zeros(1, 1, n, n, dtype=torch.float64)
    x[..., 10:26, 20:41] = 1.0  # rows 10..25 (y), columns 20..40 (x)
    op = ParallelBeamCT(n, torch.tensor([angle]), normalize=False)
    sino = op.A(x)[0, 0, :, 0]
    c = (n - 1) / 2
    x_range, y_range = (20 - c - 0.5, 40 - c + 0.5), (10 - c - 0.5, 25 - c + 0.5)
    u = torch.arange(op.n_detectors, dtype=torch.float64) - (op.n_detectors - 1) / 2
    offsets = (torch.arange(4000, dtype=torch.float64) + 0.5) / 4000 - 0.5
    chords = _rectangle_chord((u[:, None] + offsets).flatten(), math.radians(angle), x_range, y_range)
    assert torch.allclose(sino, chords.view(-1, 4000).mean(1), atol=2e-3)


def test_fbp_reconstructs_shepp_logan_and_a_flat_disk():
    x = shepp_logan(64).double()
    op = ParallelBeamCT(64, 180)
    rec = op.fbp(op.A(x))
    psnr = 10 * math.log10(1 / (rec - x).pow(2).mean().item())
    assert psnr > 24
    c = torch.arange(64, dtype=torch.float64) - 31.5
    disk = ((c[:, None] ** 2 + c[None] ** 2) <= 20**2).double()[None, None]
    flat = op.fbp(op.A(disk))[0, 0, 24:40, 24:40]
    assert float(flat.mean()) == pytest.approx(1.0, abs=0.02) and float(flat.std()) < 0.03


def test_cor_offset_shifts_the_sinogram():
    x = shepp_logan(32).double()
    shifted = ParallelBeamCT(32, 4, cor_offset=2.0, normalize=False).A(x)
    plain = ParallelBeamCT(32, 4, normalize=False).A(x)
    assert torch.allclose(shifted[..., 2:-2, :], plain[..., :-4, :], atol=1e-9)


SMALL_OPERATORS = {
    "single-coil": lambda: SingleCoilMRI(_masks(2, size=6)),
    "multi-coil": lambda: MultiCoilMRI(_masks(1, size=6), birdcage_maps(2, 6)),
    "ct": lambda: ParallelBeamCT(6, 5, cor_offset=0.5),
}


@pytest.mark.parametrize("name", SMALL_OPERATORS)
def test_operators_are_twice_differentiable(name):
    op = SMALL_OPERATORS[name]()
    g = torch.Generator().manual_seed(0)
    x = torch.randn((op.batch_size or 2, *op.image_shape), dtype=torch.float64, generator=g, requires_grad=True)
    y = op.A(torch.randn_like(x)).detach()
    assert torch.autograd.gradcheck(lambda v: op.misfit(v, y), (x,))
    assert torch.autograd.gradgradcheck(lambda v: op.A_adjoint(op.A(v)).pow(2).sum(), (x,))


def test_measurement_errors_are_clear():
    op = SingleCoilMRI(_masks(2))
    with pytest.raises(TypeError, match="complex"):
        op.check_measurement(torch.zeros(2, 16, 16, dtype=torch.complex64))
    with pytest.raises(ValueError, match=r"expects \(B, 2, 16, 16\)"):
        op.check_measurement(torch.zeros(2, 1, 16, 16))
    with pytest.raises(ValueError, match="holds 3 measurements"):
        op.check_measurement(torch.zeros(3, 2, 16, 16))
    bad = torch.zeros(2, 2, 16, 16)
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        op.check_measurement(bad)
    with pytest.raises(ValueError, match="only 0 and 1"):
        SingleCoilMRI(torch.full((16, 16), 0.5))
    with pytest.raises(ValueError, match="coil_maps has shape"):
        MultiCoilMRI(torch.ones(16, 16), birdcage_maps(4, 8))
    with pytest.raises(ValueError, match="center_fraction"):
        cartesian_mask(32, 8, 0.5)
