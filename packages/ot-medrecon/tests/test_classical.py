"""The classical compressed-sensing references: data-consistent and phase-constrained TV reconstructions."""

import math

import pytest
import torch
from ot_medrecon import Measurements, SupervisedUNet, classical_reconstruction
from ot_medrecon.classical import (
    initial_image,
    low_resolution_phase,
    phase_constrained_tv,
    tv_gradient,
    tv_reconstruction,
)
from ot_medrecon.datasets import ellipse_phantoms
from ot_medrecon.metrics import ReconMetrics
from ot_medrecon.physics import ParallelBeamCT, SingleCoilMRI, cartesian_mask, magnitude, to_channels
from ot_medrecon.simulate import NominalMRI, smooth_phase


def _tv(x, eps):
    dh = torch.nn.functional.pad(x[..., 1:, :] - x[..., :-1, :], (0, 0, 0, 1))
    dw = torch.nn.functional.pad(x[..., :, 1:] - x[..., :, :-1], (0, 1, 0, 0))
    return ((dh**2 + dw**2).sum(1) + eps**2).sqrt().sum()


def test_tv_gradient_matches_autograd():
    x = torch.randn(2, 2, 9, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0), requires_grad=True)
    (reference,) = torch.autograd.grad(_tv(x, 0.1), x)
    assert torch.allclose(tv_gradient(x.detach(), 0.1), reference, atol=1e-12)


def test_tv_reconstruction_keeps_measured_kspace_and_beats_zero_filled_on_phantoms():
    images = ellipse_phantoms(6, 32, seed=0)
    meas = Measurements.from_simulation(NominalMRI(32, 4)(images, torch.Generator().manual_seed(0)))
    state = tv_reconstruction(meas.y, meas.operator)
    assert torch.allclose(meas.operator.A(state), meas.y, atol=1e-5)  # only the unmeasured k-space is filled
    start = meas.operator.start(meas.y)
    assert float(_tv(state.double(), 0.02)) < 0.95 * float(_tv(start.double(), 0.02))
    psnr = lambda image: float(ReconMetrics()(image, meas.gt)["psnr"].mean())
    assert psnr(magnitude(state)) > psnr(classical_reconstruction(meas.y, meas.operator)) + 1.0


@pytest.mark.parametrize("solver", [tv_reconstruction, phase_constrained_tv])
def test_tv_reconstructions_refuse_operators_other_than_single_coil_mri(solver):
    ct = ParallelBeamCT(16, 10)
    with pytest.raises(ValueError, match="A A\\* = I"):
        solver(torch.zeros(1, *ct.measurement_shape), ct)


def test_tv_reconstructions_input_errors():
    meas = Measurements.from_simulation(NominalMRI(16)(ellipse_phantoms(1, 16), torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match="step"):
        tv_reconstruction(meas.y, meas.operator, step=0.3)
    with pytest.raises(ValueError, match="eps"):
        tv_reconstruction(meas.y, meas.operator, eps=0.0)
    with pytest.raises(ValueError, match="weight"):
        phase_constrained_tv(meas.y, meas.operator, weight=0.0)
    with pytest.raises(ValueError, match="width"):
        low_resolution_phase(meas.y, meas.operator, width=0.0)


def _phase_modulated(size: int, n: int = 4, acceleration: float = 4):
    """Phantoms (n, 1, size, size), their smooth phase (π peak; n, size, size) and 4x Cartesian k-space of the
    complex images m e^{iφ}."""
    generator = torch.Generator().manual_seed(0)
    images = ellipse_phantoms(n, size, seed=0)
    phase = smooth_phase(n, size, math.pi, generator)
    op = SingleCoilMRI(torch.stack([cartesian_mask(size, acceleration, 0.08, generator=generator) for _ in range(n)]))
    y = op.A(to_channels(images[:, 0].double() * torch.exp(1j * phase))).float()
    return images, phase, y, op


def test_low_resolution_phase_recovers_a_smooth_phase():
    images, phase, y, op = _phase_modulated(64)
    error = torch.angle(torch.exp(1j * (low_resolution_phase(y, op) - phase.float())))  # wrapped to (-π, π]
    support = images[:, 0] > 0.1
    assert float(error.abs()[support].mean()) < 0.1  # radians, for a phase spanning 2π


def test_phase_constrained_tv_beats_tv_on_phase_modulated_phantoms():
    images, _, y, op = _phase_modulated(64)
    psnr = lambda start: float(ReconMetrics()(classical_reconstruction(y, op, start), images)["psnr"].mean())
    assert psnr("phase_tv") > psnr("tv") + 1.0 > psnr("measurement") + 2.0  # half the unknowns: conjugate symmetry


def test_phase_constrained_tv_is_faithful_on_fully_sampled_real_images():
    images = ellipse_phantoms(3, 32, seed=1)
    meas = Measurements.from_simulation(NominalMRI(32, 1)(images, torch.Generator().manual_seed(0)))
    state = phase_constrained_tv(meas.y, meas.operator)
    assert float(ReconMetrics()(magnitude(state), images)["psnr"].mean()) > 40.0



@pytest.mark.parametrize("start", ["tv", "phase_tv"])
def test_supervised_unet_with_tv_start_post_processes_the_tv_image(start):
    meas = Measurements.from_simulation(NominalMRI(32)(ellipse_phantoms(2, 32), torch.Generator().manual_seed(0)))
    unet = SupervisedUNet.from_preset("test", "mri", start=start)
    with torch.no_grad():  # a zero U-Net leaves only the |input| skip connection
        for p in unet.model.backbone.parameters():
            p.zero_()
    expected = magnitude(initial_image(meas.y, meas.operator, start))
    assert torch.allclose(unet.forward_image(meas.y, meas.operator), expected)
    with pytest.raises(ValueError, match="start"):
        SupervisedUNet.from_preset("test", "mri", start="sense")
