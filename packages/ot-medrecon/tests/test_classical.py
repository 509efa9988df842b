"""The classical compressed-sensing reference: data-consistent TV reconstruction."""

import pytest
import torch
from ot_medrecon import Measurements, SupervisedUNet, classical_reconstruction
from ot_medrecon.classical import tv_gradient, tv_reconstruction
from ot_medrecon.datasets import ellipse_phantoms
from ot_medrecon.metrics import ReconMetrics
from ot_medrecon.physics import ParallelBeamCT, magnitude
from ot_medrecon.simulate import NominalMRI


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


def test_tv_reconstruction_input_errors():
    ct = ParallelBeamCT(16, 10)
    with pytest.raises(ValueError, match="A A\\* = I"):
        tv_reconstruction(torch.zeros(1, *ct.measurement_shape), ct)
    meas = Measurements.from_simulation(NominalMRI(16)(ellipse_phantoms(1, 16), torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match="step"):
        tv_reconstruction(meas.y, meas.operator, step=0.3)
    with pytest.raises(ValueError, match="eps"):
        tv_reconstruction(meas.y, meas.operator, eps=0.0)


def test_supervised_unet_with_tv_start_post_processes_the_tv_image():
    meas = Measurements.from_simulation(NominalMRI(32)(ellipse_phantoms(2, 32), torch.Generator().manual_seed(0)))
    unet = SupervisedUNet.from_preset("test", "mri", start="tv")
    with torch.no_grad():  # a zero U-Net leaves only the |input| skip connection
        for p in unet.model.backbone.parameters():
            p.zero_()
    expected = magnitude(tv_reconstruction(meas.y, meas.operator))
    assert torch.allclose(unet.forward_image(meas.y, meas.operator), expected)
    with pytest.raises(ValueError, match="start"):
        SupervisedUNet.from_preset("test", "mri", start="sense")
