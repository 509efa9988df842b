"""Files: measurement archives (``.npz``), trained-model checkpoints, NIfTI output.

Measurement ``.npz`` layouts (one acquisition per row):

* MRI single-coil: ``y`` complex (N, H, W) or real (N, 2, H, W), ``mask`` (N, H, W) or (H, W) of 0/1;
* MRI multi-coil: ``y`` complex (N, C, H, W) or real (N, 2, C, H, W), ``mask``, ``coil_maps`` complex (C, H, W)
  or (N, C, H, W);
* CT: ``y`` (N, 1, D, V) or (N, D, V) float, ``angles`` (V,) in degrees, ``img_size``, optional ``cor_offset``.

Optional ``gt`` (N, H, W) or (N, 1, H, W) makes the archive a paired / evaluation set.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from ot_core import training

from .engine import Measurements
from .physics import MultiCoilMRI, ParallelBeamCT, SingleCoilMRI, to_channels

__all__ = ["load_measurements", "save_measurements", "save_nifti", "save_model", "load_model"]


def load_measurements(path: str | os.PathLike) -> Measurements:
    """Read a measurement archive (layouts in the module docstring) into :class:`Measurements`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"measurement file {path} does not exist")
    data = np.load(path)
    if "y" not in data:
        raise KeyError(f"{path} has no 'y' array (found {sorted(data.keys())}); see ot_medrecon.io for the layout")
    y = torch.as_tensor(data["y"])
    gt = torch.as_tensor(data["gt"], dtype=torch.float32) if "gt" in data else None
    if gt is not None and gt.dim() == 3:
        gt = gt[:, None]
    if "angles" in data:
        if y.is_complex():
            raise TypeError(f"{path}: a CT sinogram 'y' must be real, got {y.dtype}")
        y = (y[:, None] if y.dim() == 3 else y).float()
        op = ParallelBeamCT(int(data["img_size"]), torch.as_tensor(data["angles"], dtype=torch.float64),
                            n_detectors=y.shape[-2], cor_offset=float(data.get("cor_offset", 0.0)))
        return Measurements(y, op, gt)
    if "mask" not in data:
        raise KeyError(f"{path}: MRI measurements need a 'mask' (CT needs 'angles' and 'img_size')")
    multi = "coil_maps" in data
    if y.is_complex():
        y = to_channels(y)
    elif y.dim() != (5 if multi else 4) or y.shape[1] != 2:
        raise TypeError(f"{path}: real 'y' of shape {tuple(y.shape)} must hold real/imaginary channels "
                        f"{'(N, 2, C, H, W)' if multi else '(N, 2, H, W)'}; or save complex k-space")
    y = y.float()
    mask = torch.as_tensor(data["mask"])
    if tuple(mask.shape[-2:]) != tuple(y.shape[-2:]):
        raise ValueError(f"{path}: mask of shape {tuple(mask.shape)} does not match the k-space grid "
                         f"{tuple(y.shape[-2:])}")
    op = MultiCoilMRI(mask, torch.as_tensor(data["coil_maps"])) if multi else SingleCoilMRI(mask)
    return Measurements(y, op, gt)


def save_measurements(path: str | os.PathLike, meas: Measurements) -> Path:
    """Write :class:`Measurements` in the layout :func:`load_measurements` reads."""
    arrays = {"y": meas.y.numpy()}
    op = meas.operator
    if isinstance(op, ParallelBeamCT):
        arrays.update(angles=op.angles.numpy(), img_size=np.int64(op.img_size))
    else:
        arrays["mask"] = op.mask[:, 0].numpy().astype(np.uint8)
        if isinstance(op, MultiCoilMRI):
            arrays["coil_maps"] = torch.view_as_complex(op.maps_ri).numpy()
    if meas.gt is not None:
        arrays["gt"] = meas.gt.numpy()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    return path


def save_nifti(path: str | os.PathLike, images: torch.Tensor) -> Path:
    """Images (N, 1, H, W) -> a NIfTI volume (H, W, N) with an identity affine (1 mm pixels)."""
    import nibabel as nib

    volume = images[:, 0].permute(1, 2, 0).detach().cpu().numpy().astype(np.float32)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(volume, np.eye(4)), str(path))
    return path


def save_model(model: torch.nn.Module, path: str | os.PathLike, spec: dict) -> Path:
    """Atomically save a model built by ``from_preset(**spec)`` with its ``spec`` (method, preset, modality,
    image_size, acquisition settings)."""
    return training.atomic_save({"spec": dict(spec), "state_dict": model.state_dict()}, path)


def load_model(path: str | os.PathLike):
    """(model, spec) from a :func:`save_model` file."""
    from .baselines import SupervisedUNet, SupervisedUnrolled
    from .kidot import KIDOT

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    state = torch.load(path, map_location="cpu", weights_only=False)
    if "spec" not in state:
        raise ValueError(f"{path} is not an ot-medrecon model file (no 'spec'); use the model.pt that fit writes")
    spec = state["spec"]
    classes = {"kidot": KIDOT, "supervised_unet": SupervisedUNet, "supervised_unrolled": SupervisedUnrolled}
    kwargs = {"image_size": spec["image_size"], "null_space": spec.get("null_space", False),
              "start": spec.get("start", "measurement")} \
        if spec["method"] == "kidot" else {}  # files written before these options have none
    model = classes[spec["method"]].from_preset(spec["preset"], spec["modality"], **kwargs)
    model.load_state_dict(state["state_dict"])
    return model.eval(), spec
