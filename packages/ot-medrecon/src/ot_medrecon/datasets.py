"""Images: embedded defaults that need no download (Shepp–Logan, random ellipse phantoms, pydicom's bundled
DICOM slices), the Deep-ADMM-Net MR images when present, and MONAI dictionary-transform loading of the
user's NIfTI / DICOM / PNG / NumPy files.

All loaders return float32 tensors (N, 1, H, W) with values in [0, 1].
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "area_resize",
    "shepp_logan",
    "ellipse_phantoms",
    "pydicom_samples",
    "deep_admm_net",
    "deep_admm_net_masks",
    "shared_data_root",
    "load_images",
    "image_transforms",
    "augment",
    "augment_sources",
]

# Modified Shepp–Logan (Toft 1996): value, semi-axis x, semi-axis y, centre x, centre y, angle (degrees).
_SHEPP_LOGAN = (
    (1.0, 0.69, 0.92, 0.0, 0.0, 0.0),
    (-0.8, 0.6624, 0.874, 0.0, -0.0184, 0.0),
    (-0.2, 0.11, 0.31, 0.22, 0.0, -18.0),
    (-0.2, 0.16, 0.41, -0.22, 0.0, 18.0),
    (0.1, 0.21, 0.25, 0.0, 0.35, 0.0),
    (0.1, 0.046, 0.046, 0.0, 0.1, 0.0),
    (0.1, 0.046, 0.046, 0.0, -0.1, 0.0),
    (0.1, 0.046, 0.023, -0.08, -0.605, 0.0),
    (0.1, 0.023, 0.023, 0.0, -0.606, 0.0),
    (0.1, 0.023, 0.046, 0.06, -0.605, 0.0),
)


def area_resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Area (box-average) resize of (N, C, H, W) to (N, C, size, size); exact block means for integer factors."""
    if images.shape[-2:] == (size, size):
        return images
    return F.interpolate(images, size=(size, size), mode="area")


def render_ellipses(ellipses: torch.Tensor, size: int, supersample: int = 4) -> torch.Tensor:
    """Render a sum of ellipses (n, 6: value, a, b, cx, cy, angle in radians) on [-1, 1]² (y up) to (size, size).

    Indicators are evaluated at the centres of a ``supersample``-times finer grid, summed, clipped to [0, 1] and
    box-averaged (anti-aliasing).
    """
    fine = size * supersample
    centres = -1 + (2 * torch.arange(fine, dtype=torch.float64) + 1) / fine
    v, u = torch.meshgrid(centres.flip(0), centres, indexing="ij")  # row 0 is the top (y = 1)
    image = torch.zeros(fine, fine, dtype=torch.float64)
    for rho, a, b, cx, cy, theta in ellipses.tolist():
        du, dv = u - cx, v - cy
        ur = du * math.cos(theta) + dv * math.sin(theta)
        vr = -du * math.sin(theta) + dv * math.cos(theta)
        image += rho * ((ur / a) ** 2 + (vr / b) ** 2 <= 1)
    image = image.clamp(0, 1)[None, None]
    return F.avg_pool2d(image, supersample)[0, 0].to(torch.float32)


def shepp_logan(size: int = 64) -> torch.Tensor:
    """The modified Shepp–Logan phantom (1, 1, size, size) in [0, 1] (rendered analytically, 4x supersampled)."""
    table = torch.tensor(_SHEPP_LOGAN, dtype=torch.float64)
    table[:, 5] = torch.deg2rad(table[:, 5])
    return render_ellipses(table, size)[None, None]


def _random_ellipses(generator: torch.Generator) -> torch.Tensor:
    def uniform(lo, hi, n=1):
        return lo + (hi - lo) * torch.rand(n, dtype=torch.float64, generator=generator)

    body = torch.cat([torch.tensor([0.6]), uniform(0.75, 0.9), uniform(0.6, 0.8), torch.zeros(2),
                      uniform(-0.2, 0.2)])
    n = int(torch.randint(3, 11, (1,), generator=generator))
    radius, angle = 0.5 * uniform(0, 1, n).sqrt(), uniform(0, 2 * math.pi, n)
    inner = torch.stack([uniform(-0.3, 0.4, n), uniform(0.04, 0.3, n), uniform(0.04, 0.3, n),
                         radius * torch.cos(angle), radius * torch.sin(angle), uniform(0, math.pi, n)], dim=1)
    return torch.cat([body[None], inner])


def ellipse_phantoms(n: int, size: int = 64, seed: int = 0, supersample: int = 4) -> torch.Tensor:
    """n random ellipse phantoms (n, 1, size, size) in [0, 1]; image i uses seed ``seed + i``, so disjoint seed
    ranges give disjoint splits. A body ellipse (value 0.6) holds 3–10 inner ellipses of value U(-0.3, 0.4);
    rendered on a ``supersample``-times finer grid and box-averaged."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    images = [render_ellipses(_random_ellipses(torch.Generator().manual_seed(seed + i)), size, supersample)
              for i in range(n)]
    return torch.stack(images)[:, None] if images else torch.zeros(0, 1, size, size)


def shared_data_root() -> Path | None:
    """``$OT_MEDRECON_DATA``, else ``<repo root>/../shared/data/medrecon`` (a source checkout) when it exists,
    else None."""
    env = os.environ.get("OT_MEDRECON_DATA")
    if env:
        return Path(env) if Path(env).is_dir() else None
    parents = Path(__file__).resolve().parents
    candidate = parents[min(5, len(parents) - 1)] / "shared" / "data" / "medrecon"
    return candidate if candidate.is_dir() else None


def _deep_admm_file(root: str | os.PathLike | None, name: str) -> Path:
    base = Path(root) if root is not None else shared_data_root()
    if base is None:
        raise FileNotFoundError("Deep-ADMM-Net data not found: pass root=<folder with deep_admm_net/> or set "
                                "OT_MEDRECON_DATA")
    for path in (base / name, base / "deep_admm_net" / name):
        if path.is_file():
            return path
    raise FileNotFoundError(f"{name} not found under {base} (expected {base / 'deep_admm_net' / name})")


def deep_admm_net(root: str | os.PathLike | None = None, subset: str = "chest", size: int = 64
                  ) -> tuple[torch.Tensor, list[str]]:
    """Deep-ADMM-Net MR magnitude images (Yang et al., NIPS 2016): ``subset="chest"`` (20) or ``"brain"`` (2),
    area-resized to ``size`` and divided by their maximum; returns (images (N, 1, size, size), names)."""
    if subset not in ("chest", "brain"):
        raise ValueError(f"subset={subset!r}; use 'chest' or 'brain'")
    data = np.load(_deep_admm_file(root, f"{subset}.npz"))
    images = area_resize(torch.from_numpy(data["images"].astype(np.float32))[:, None], size)
    images = images / images.flatten(1).amax(1).view(-1, 1, 1, 1)
    names = [str(n) for n in data["names"]] if "names" in data else [f"{subset}-{i}" for i in range(len(images))]
    return images, names


def deep_admm_net_masks(root: str | os.PathLike | None = None, size: int = 64) -> tuple[torch.Tensor, list[str]]:
    """The centred pseudo-radial masks of Deep-ADMM-Net (N, size, size), subsampled with stride 256 / size (the
    centre stays sampled), and their names."""
    data = np.load(_deep_admm_file(root, "masks.npz"))
    masks = torch.from_numpy(data["masks"].astype(np.float32))
    stride = masks.shape[-1] // size
    if stride * size != masks.shape[-1]:
        raise ValueError(f"size={size} must divide {masks.shape[-1]}")
    return masks[:, ::stride, ::stride].contiguous(), [str(n) for n in data["names"]]


def pydicom_samples(size: int = 64) -> dict[str, torch.Tensor]:
    """The CT and MR slices bundled with pydicom (``CT_small.dcm``, ``MR_small.dcm``), loaded through MONAI and
    scaled to [0, 1] (CT: HU window [-1000, 1000]); each (1, 1, size, size)."""
    from pydicom.data import get_testdata_file

    return {"ct": load_images([get_testdata_file("CT_small.dcm")], size=size, ct_window=(-1000.0, 1000.0)),
            "mr": load_images([get_testdata_file("MR_small.dcm")], size=size)}


def image_transforms(size: int | None = None, ct_window: tuple[float, float] | None = None, key: str = "image"):
    """MONAI dictionary pipeline: ``LoadImaged`` (NIfTI, DICOM, PNG, NumPy), channel first, the first channel
    only, intensity to [0, 1] (``ScaleIntensityRanged`` over ``ct_window`` in HU, else min-max), area resize."""
    from monai.transforms import (Compose, EnsureTyped, LoadImaged, Lambdad, Resized, ScaleIntensityd,
                                  ScaleIntensityRanged)

    steps = [LoadImaged(keys=key, image_only=True, ensure_channel_first=True),
             Lambdad(keys=key, func=_first_2d_slice)]
    if ct_window is not None:
        steps.append(ScaleIntensityRanged(keys=key, a_min=ct_window[0], a_max=ct_window[1], b_min=0.0, b_max=1.0,
                                          clip=True))
    else:
        steps.append(ScaleIntensityd(keys=key, minv=0.0, maxv=1.0))
    if size is not None:
        steps.append(Resized(keys=key, spatial_size=(size, size), mode="area"))
    steps.append(EnsureTyped(keys=key, data_type="tensor", dtype=torch.float32, track_meta=False))
    return Compose(steps)


def _first_2d_slice(image):
    """(C, H, W[, D]) -> (1, H, W): the first channel; the middle slice of a volume."""
    image = image[:1]
    if image.dim() == 4:
        image = image[..., image.shape[-1] // 2]
    if image.dim() != 3:
        raise ValueError(f"expected a 2-D image or a 3-D volume, got an array of shape {tuple(image.shape)}")
    return image


def load_images(paths: Sequence[str | os.PathLike] | str | os.PathLike, size: int | None = None,
                ct_window: tuple[float, float] | None = None) -> torch.Tensor:
    """Load 2-D images (NIfTI, DICOM, PNG, .npy; the middle slice of a volume) with MONAI's ``LoadImaged`` into
    (N, 1, size, size) in [0, 1]. A folder loads every supported file in it (sorted). An ``.npz`` file loads its
    ``images`` array (N, H, W)."""
    files = _expand_paths(paths)
    pipeline = image_transforms(size, ct_window)
    images = []
    for path in files:
        if path.suffix == ".npz":
            images.append(_load_npz_images(path, size))
        else:
            images.append(torch.as_tensor(pipeline({"image": str(path)})["image"])[None])
    shapes = {tuple(im.shape[-2:]) for im in images}
    if len(shapes) > 1:
        raise ValueError(f"images have different sizes {sorted(shapes)}; pass size=... to resize them")
    return torch.cat(images).float()


_IMAGE_SUFFIXES = (".nii", ".nii.gz", ".dcm", ".png", ".npy", ".npz", ".jpg", ".tif", ".tiff")


def _expand_paths(paths) -> list[Path]:
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.iterdir() if f.name.lower().endswith(_IMAGE_SUFFIXES))
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"image path {p} does not exist")
    if not files:
        raise FileNotFoundError(f"no image files ({', '.join(_IMAGE_SUFFIXES)}) in {[str(p) for p in paths]}")
    return files


def _load_npz_images(path: Path, size: int | None) -> torch.Tensor:
    data = np.load(path)
    if "images" not in data:
        raise KeyError(f"{path} has no 'images' array (found {list(data.keys())}); save images=(N, H, W)")
    images = torch.as_tensor(data["images"], dtype=torch.float32)
    if images.dim() == 3:
        images = images[:, None]
    if images.dim() != 4 or images.shape[1] != 1:
        raise ValueError(f"{path}: 'images' must be (N, H, W) or (N, 1, H, W), got {tuple(images.shape)}")
    lo = images.flatten(1).amin(1).view(-1, 1, 1, 1)
    hi = images.flatten(1).amax(1).view(-1, 1, 1, 1)
    images = (images - lo) / (hi - lo).clamp_min(1e-12)
    return area_resize(images, size) if size else images


def augment(images: torch.Tensor, generator: torch.Generator | None = None, max_angle: float = 10.0,
            scale_range: tuple[float, float] = (0.9, 1.1)) -> torch.Tensor:
    """Random flips and 90° rotations per image (the dihedral group), then a small random affine map (rotation
    U(-max_angle, max_angle) degrees, isotropic scale U(scale_range); bilinear, zero outside), as MONAI's
    ``RandAffine``. ``max_angle=0`` and ``scale_range=(1, 1)`` keep the dihedral part only."""
    out = images.clone()
    k = torch.randint(0, 8, (images.shape[0],), generator=generator)
    for i, code in enumerate(k.tolist()):
        im = out[i]
        if code & 4:
            im = im.flip(-1)
        out[i] = torch.rot90(im, code & 3, dims=(-2, -1))
    if max_angle == 0 and scale_range == (1, 1):
        return out
    n = images.shape[0]
    angle = torch.deg2rad((2 * torch.rand(n, generator=generator) - 1) * max_angle)
    scale = scale_range[0] + (scale_range[1] - scale_range[0]) * torch.rand(n, generator=generator)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, torch.zeros(n)], 1), torch.stack([sin, cos, torch.zeros(n)], 1)], 1)
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(out, grid, mode="bilinear", padding_mode="zeros", align_corners=False).clamp(0, 1)


def augment_sources(images: torch.Tensor, copies: int, size: int, generator: torch.Generator | None = None,
                    crop: tuple[float, float] = (0.8, 1.0), intensity: tuple[float, float] = (0.85, 1.0)
                    ) -> torch.Tensor:
    """``copies`` augmented versions of each high-resolution source image (N, 1, H, H) -> (N * copies, 1, size,
    size), copy-major per image: a random square crop of side U(``crop``) · H at a random position, area-resized
    to ``size`` (the rescaling) and divided by its maximum, a random flip / 90° rotation and an intensity scale
    U(``intensity``) (values stay in [0, 1]). Augmenting the sources before the resize keeps the pools of
    different images disjoint."""
    if copies < 1 or images.dim() != 4 or images.shape[-1] != images.shape[-2] or images.shape[-1] < size:
        raise ValueError(f"augment_sources needs copies >= 1 and square sources of at least {size} px, got "
                         f"copies={copies}, shape {tuple(images.shape)}")
    n_src = images.shape[-1]
    out = []
    for image in images:
        for _ in range(copies):
            fraction = crop[0] + (crop[1] - crop[0]) * float(torch.rand(1, generator=generator))
            side = max(size, round(n_src * fraction))
            top, left = (int(torch.randint(0, n_src - side + 1, (1,), generator=generator)) for _ in range(2))
            crop_image = area_resize(image[None, :, top:top + side, left:left + side], size)[0]
            out.append(crop_image / crop_image.max().clamp_min(1e-12))
    scale = intensity[0] + (intensity[1] - intensity[0]) * torch.rand(len(out), 1, 1, 1, generator=generator)
    return augment(torch.stack(out), generator, max_angle=0.0, scale_range=(1, 1)) * scale
