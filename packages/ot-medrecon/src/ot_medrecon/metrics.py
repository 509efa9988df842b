"""Image-quality metrics on magnitude / attenuation images (B, 1, H, W).

Both images are divided by max(GT) per image (no clipping), so ``data_range = 1``: PSNR = 10 log10(1 / MSE)
(MONAI ``PSNRMetric``), SSIM with MONAI ``SSIMMetric`` (Gaussian window 11, σ 1.5, k1 0.01, k2 0.03),
NMSE = ||x̂ - x||² / ||x||², and the data consistency ||A x̂ - y|| / ||y|| when an operator is given.
"""

from __future__ import annotations

import torch
from monai.metrics import PSNRMetric, SSIMMetric

from .physics import LinearOperator

__all__ = ["ReconMetrics", "normalise_pair"]


def normalise_pair(pred: torch.Tensor, gt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Divide both by max(gt) per image."""
    if pred.shape != gt.shape or pred.dim() != 4 or pred.shape[1] != 1:
        raise ValueError(f"pred {tuple(pred.shape)} and gt {tuple(gt.shape)} must both be (B, 1, H, W)")
    scale = gt.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1, 1)
    return pred / scale, gt / scale


class ReconMetrics:
    """Per-image PSNR, SSIM, NMSE (and DC with ``operator`` and ``y``): ``metrics(pred, gt) -> dict of (B,)``."""

    names = ("psnr", "ssim", "nmse")

    def __init__(self, data_range: float = 1.0):
        self.psnr = PSNRMetric(max_val=data_range, reduction="none")
        self.ssim = SSIMMetric(spatial_dims=2, data_range=data_range, kernel_type="gaussian", win_size=11,
                               kernel_sigma=1.5, k1=0.01, k2=0.03, reduction="none")

    @torch.no_grad()
    def __call__(self, pred: torch.Tensor, gt: torch.Tensor, operator: LinearOperator | None = None,
                 y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        p, g = normalise_pair(pred.float(), gt.float())
        out = {
            "psnr": self.psnr(y_pred=p, y=g).reshape(-1),
            "ssim": self.ssim(y_pred=p, y=g).reshape(-1),
            "nmse": ((p - g).pow(2).flatten(1).sum(1) / g.pow(2).flatten(1).sum(1).clamp_min(1e-12)),
        }
        if operator is not None and y is not None:
            image = pred if operator.image_channels == 1 else torch.cat([pred, torch.zeros_like(pred)], 1)
            out["dc"] = (operator.A(image.to(y.dtype)) - y).flatten(1).norm(dim=1) / y.flatten(1).norm(dim=1)
        return out
