"""Embedded images, MONAI loading of NIfTI / DICOM / NumPy, the Deep-ADMM-Net reference values."""

import math

import numpy as np
import pytest
import torch
from ot_medrecon.datasets import (area_resize, augment, augment_sources, deep_admm_net, deep_admm_net_masks,
                                  ellipse_phantoms, load_images, pydicom_samples, shared_data_root, shepp_logan)
from ot_medrecon.physics import SingleCoilMRI, magnitude


def test_shepp_logan_values_and_geometry():
    x = shepp_logan(128)[0, 0]
    assert x.shape == (128, 128) and float(x.min()) >= 0 and float(x.max()) == pytest.approx(1.0)
    assert float(x[64, 64]) == pytest.approx(0.2, abs=1e-6)  # inside the brain, between the ventricles
    assert float(x[0, 0]) == 0.0
    assert float(x[7, 64]) == pytest.approx(1.0)  # the skull at the top (rows 5.1 to 9.2)


def test_ellipse_phantoms_are_seeded_and_split_by_seed():
    a = ellipse_phantoms(3, 32, seed=10)
    b = ellipse_phantoms(2, 32, seed=11)
    assert torch.equal(a[1:], b)
    assert a.shape == (3, 1, 32, 32) and 0 <= float(a.min()) and float(a.max()) <= 1
    assert not torch.equal(a[0], a[1])


def test_area_resize_is_a_block_mean():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    assert torch.equal(area_resize(x, 2)[0, 0], torch.tensor([[2.5, 4.5], [10.5, 12.5]]))


def _dihedral(x):
    return [torch.rot90(x, k, (-2, -1)) for k in range(4)] + [torch.rot90(x.flip(-1), k, (-2, -1)) for k in range(4)]


def test_augment_is_a_dihedral_transform_plus_a_small_affine_map():
    x = torch.rand(8, 1, 8, 8)
    y = augment(x, torch.Generator().manual_seed(0), max_angle=0, scale_range=(1, 1))
    for i in range(8):
        assert any(torch.equal(y[i], c) for c in _dihedral(x[i]))
    disk = shepp_logan(32)
    moved = augment(disk.expand(16, -1, -1, -1), torch.Generator().manual_seed(1))
    assert moved.shape == (16, 1, 32, 32) and 0 <= float(moved.min()) and float(moved.max()) <= 1
    assert float((moved.mean((1, 2, 3)) / disk.mean()).sub(1).abs().max()) < 0.25  # scale 0.9-1.1: area ±21 %


def test_augment_sources_crops_resizes_flips_and_scales():
    source = torch.rand(2, 1, 32, 32)
    plain = augment_sources(source, 3, 8, torch.Generator().manual_seed(0), crop=(1, 1), intensity=(1, 1))
    assert plain.shape == (6, 1, 8, 8)
    for i, out in enumerate(plain):  # copy-major: copies 0-2 of image 0, then of image 1
        reference = area_resize(source[i // 3][None], 8)[0]
        assert any(torch.allclose(out, c / reference.max()) for c in _dihedral(reference))
    half = augment_sources(source, 4, 8, torch.Generator().manual_seed(1), crop=(0.5, 0.5), intensity=(0.5, 0.5))
    assert torch.allclose(half.flatten(1).amax(1), torch.full((8,), 0.5))
    windows = [area_resize(source[0:1, :, t:t + 16, s:s + 16], 8)[0] for t in range(17) for s in range(17)]
    for out in half[:4]:  # each copy is a flipped / rotated, rescaled 16 x 16 window of its own source
        assert any(torch.allclose(out, 0.5 * c / w.max(), atol=1e-6) for w in windows for c in _dihedral(w))
    with pytest.raises(ValueError, match="copies"):
        augment_sources(source, 0, 8)
    with pytest.raises(ValueError, match="at least 64"):
        augment_sources(source, 1, 64)


def test_load_nifti_numpy_and_npz(tmp_path):
    import nibabel as nib

    img = np.random.default_rng(0).random((40, 40)).astype(np.float32) * 300
    nib.save(nib.Nifti1Image(img, np.eye(4)), str(tmp_path / "a.nii.gz"))
    np.save(tmp_path / "b.npy", img)
    loaded = load_images(tmp_path, size=20)
    assert loaded.shape == (2, 1, 20, 20)
    assert type(loaded) is torch.Tensor  # plain tensors, not MONAI MetaTensors
    assert 0 <= float(loaded.min()) and float(loaded.max()) <= 1 + 1e-6
    assert load_images(tmp_path / "a.nii.gz").amax() == pytest.approx(1.0)  # min-max scaled before resizing
    np.savez(tmp_path / "c.npz", images=np.stack([img, img]))
    assert load_images(tmp_path / "c.npz", size=20).shape == (2, 1, 20, 20)
    vol = np.random.default_rng(1).random((16, 16, 5)).astype(np.float32)
    nib.save(nib.Nifti1Image(vol, np.eye(4)), str(tmp_path / "vol.nii.gz"))
    assert load_images(tmp_path / "vol.nii.gz").shape == (1, 1, 16, 16)


def test_load_dicom_with_ct_window():
    samples = pydicom_samples(64)
    assert samples["ct"].shape == (1, 1, 64, 64) and samples["mr"].shape == (1, 1, 64, 64)
    ct = samples["ct"]
    assert 0 <= float(ct.min()) and float(ct.max()) <= 1
    # CT_small.dcm spans -896..1167 HU; the [-1000, 1000] window maps -896 HU to 0.052
    assert float(ct.min()) == pytest.approx(0.052, abs=0.02)


def test_loader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_images(tmp_path / "missing.nii.gz")
    with pytest.raises(FileNotFoundError, match="no image files"):
        load_images(tmp_path)
    np.savez(tmp_path / "x.npz", pictures=np.zeros((1, 4, 4)))
    with pytest.raises(KeyError, match="no 'images'"):
        load_images(tmp_path / "x.npz")


needs_data = pytest.mark.skipif(shared_data_root() is None, reason="../shared/data/medrecon is absent")


@pytest.mark.shared_data
@needs_data
def test_deep_admm_net_zero_filled_reference_values():
    """Spec §5.2: zero-filled PSNR of the 20 chest images at 256² with the pseudo-radial masks."""
    images, names = deep_admm_net(size=256)
    masks, mask_names = deep_admm_net_masks(size=256)
    assert names[10] == "im-100.mat" and len(images) == 20
    expected = {"mask_10": 24.44, "mask_20": 28.40, "mask_30": 31.35, "mask_40": 33.92, "mask_50": 36.51}
    for mask, name in zip(masks, mask_names):
        key = name.split("/")[-1].replace(".mat", "")
        if key not in expected:
            continue
        op = SingleCoilMRI(mask)
        x = torch.cat([images, torch.zeros_like(images)], 1).double()
        zf = magnitude(op.start(op.A(x)))
        mse = (zf - images.double()).pow(2).flatten(1).mean(1)
        psnr = 10 * torch.log10(1 / mse)
        assert float(psnr.mean()) == pytest.approx(expected[key], abs=0.05), key


@pytest.mark.shared_data
@needs_data
def test_deep_admm_net_downsized_masks_keep_the_centre():
    masks, _ = deep_admm_net_masks(size=64)
    assert masks.shape[-2:] == (64, 64) and bool((masks[:, 32, 32] == 1).all())
    ratios = masks.flatten(1).mean(1)
    assert math.isclose(float(ratios[1]), 0.115, abs_tol=0.01)  # mask_10 at 64²
