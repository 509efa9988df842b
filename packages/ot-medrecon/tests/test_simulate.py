"""Nominal and prospective simulators: level 0 equals the nominal model, each component changes what it should."""

import math

import pytest
import torch
from ot_medrecon.datasets import ellipse_phantoms, shepp_logan
from ot_medrecon.metrics import ReconMetrics
from ot_medrecon.physics import birdcage_maps, magnitude, to_complex
from ot_medrecon.simulate import (NominalCT, NominalMRI, ProspectiveCT, ProspectiveMRI, SimulateMeasurementd,
                                  field_map, smooth_phase)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def images():
    return ellipse_phantoms(3, 64, seed=5)


def test_nominal_mri_is_the_operator_applied_to_the_real_image(images):
    out = NominalMRI(32)(images, _gen())
    x = torch.cat([out["gt"], torch.zeros_like(out["gt"])], 1)
    assert torch.allclose(out["y"], out["operator"].A(x), atol=1e-5)
    assert out["mask"].shape == (3, 32, 32) and out["gt"].shape == (3, 1, 32, 32)


@pytest.mark.parametrize("sim", [lambda: (NominalMRI(32), ProspectiveMRI(32, level=0)),
                                 lambda: (NominalCT(32, 30), ProspectiveCT(32, level=0, views=30))])
def test_level_zero_reproduces_the_nominal_simulator(images, sim):
    nominal, true = sim()
    a, b = nominal(images, _gen(3)), true(images, _gen(3))
    assert torch.equal(a["y"], b["y"]) and torch.equal(a["gt"], b["gt"])


def test_mri_noise_has_the_requested_snr(images):
    out = ProspectiveMRI(32, level=1, components={"phase_max": 0.0})(images, _gen())
    clean = NominalMRI(32)(images, _gen())
    assert torch.equal(out["mask"], clean["mask"])  # masks are drawn first, so the same generator gives the same
    noise = (out["y"] - clean["y"]).pow(2).sum((1, 2, 3))
    signal = clean["y"].pow(2).sum((1, 2, 3))
    snr = 10 * torch.log10(signal / noise)
    assert torch.allclose(snr, torch.full_like(snr, 30.0), atol=0.6)


def test_phase_and_gt_of_the_fine_grid(images):
    out = ProspectiveMRI(32, level=2, components={"snr_db": None, "off_resonance_hz": 0.0})(images, _gen())
    full = ProspectiveMRI(32, level=2, acceleration=1, center_fraction=1.0,
                          components={"snr_db": None, "off_resonance_hz": 0.0})(images, _gen())
    # fully sampled, noise-free: |zero-filled| is the phase-free GT of the same acquisition up to the (small)
    # non-commutation of the smooth phase with the k-space truncation
    assert (magnitude(full["operator"].start(full["y"])) - full["gt"]).abs().max() < 0.03
    assert torch.allclose(out["gt"], full["gt"])
    assert to_complex(full["operator"].start(full["y"])).angle().abs().max() > 0.5


def test_smooth_phase_and_field_map_ranges():
    phase = smooth_phase(4, 16, math.pi, _gen())
    assert phase.abs().amax((1, 2)).sub(math.pi).abs().max() < 1e-9
    df = field_map(4, 16, 60.0, _gen())
    assert df.abs().amax((1, 2)).sub(60.0).abs().max() < 1e-9


def test_prospective_mri_level_three_departs_from_the_nominal_model(images):
    nominal = NominalMRI(32)(images, _gen(1))
    true = ProspectiveMRI(32, level=3)(images, _gen(1))
    assert torch.equal(nominal["mask"], true["mask"])
    rel = (true["y"] - nominal["y"]).norm() / nominal["y"].norm()
    assert rel > 0.3  # phase up to π alone rotates most of the signal


def test_multi_coil_prospective_acquisition(images):
    maps = birdcage_maps(4, 32)
    out = ProspectiveMRI(32, level=1, coil_maps=maps)(images, _gen())
    assert out["y"].shape == (3, 2, 4, 32, 32)
    clean = NominalMRI(32, coil_maps=maps)(images, _gen())
    x = torch.cat([clean["gt"], torch.zeros_like(clean["gt"])], 1)
    assert torch.allclose(clean["y"], clean["operator"].A(x), atol=1e-5)


def test_ct_low_dose_is_noisier_and_cor_offset_shifts():
    x = shepp_logan(64)
    normal = ProspectiveCT(32, level=1, views=30)(x, _gen())
    low = ProspectiveCT(32, level=1, views=30, dose=0.05)(x, _gen())
    clean = NominalCT(32, 30, snr_db=None)(x, _gen())
    err = lambda out: (out["y"] - clean["y"]).pow(2).mean()  # noqa: E731
    assert err(low) > 5 * err(normal)
    shifted = ProspectiveCT(32, level=0, views=30, components={"cor_offset": 4.0})(x, _gen())
    assert (shifted["y"] - clean["y"]).abs().max() > 0.1


def test_ct_fine_grid_is_close_to_the_working_grid():
    x = shepp_logan(64)
    fine = ProspectiveCT(32, level=0, views=30, snr_db=None, components={"fine_grid": True})(x, _gen())
    clean = NominalCT(32, 30, snr_db=None)(x, _gen())
    rel = (fine["y"] - clean["y"]).norm() / clean["y"].norm()
    assert 0.001 < rel < 0.15


def test_simulator_input_errors():
    with pytest.raises(ValueError, match="level"):
        ProspectiveMRI(32, level=7)
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        NominalMRI(32)(torch.rand(2, 32, 32))
    with pytest.raises(ValueError, match="at least 32"):
        NominalCT(32, 10)(torch.rand(1, 1, 16, 16))
    with pytest.raises(TypeError, match="magnitude"):
        NominalMRI(32)(torch.rand(1, 1, 32, 32, dtype=torch.complex64))


def test_dictionary_transform_is_seeded():
    t = SimulateMeasurementd("image", NominalMRI(32)).set_random_state(seed=4)
    a = t({"image": shepp_logan(32)[0]})
    b = SimulateMeasurementd("image", NominalMRI(32)).set_random_state(seed=4)({"image": shepp_logan(32)[0]})
    assert a["meas_y"].shape == (2, 32, 32) and a["meas_mask"].shape == (32, 32)
    assert torch.equal(a["meas_y"], b["meas_y"])
