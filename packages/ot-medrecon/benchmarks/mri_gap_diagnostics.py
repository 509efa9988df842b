"""Why KIDOT learns little on the MRI gap protocol: no-training diagnostics on S_val (im-07, im-08 × 5
acquisitions through the true simulator at level 3, the protocol's seed 2000). Prints, for 4x and 8x:

* zero-filled PSNR / SSIM with all level-3 components, without the k-space noise, and with the noise alone;
* an oracle that keeps the measured k-space y and takes every unmeasured sample from the (real) ground truth:
  with the noise alone it bounds what noise in the measured samples costs a data-consistent reconstruction;
* image statistics (mean, 99th percentile, per-image max, mean |horizontal gradient|) of the clean set S_img,
  of the S_val ground truth and of the zero-filled S_val images: what separates them for a critic.

    uv run python packages/ot-medrecon/benchmarks/mri_gap_diagnostics.py
"""

from __future__ import annotations

import torch
from ot_medrecon.metrics import ReconMetrics
from ot_medrecon.physics import magnitude
from ot_medrecon.protocol import ProtocolConfig, _pools, build_data
from ot_medrecon.simulate import ProspectiveMRI

VARIANTS = {"level 3": {}, "level 3 without noise": {"snr_db": None},
            "noise only (20 dB)": {"phase_max": 0.0, "off_resonance_hz": 0.0, "motion_fraction": 0.0,
                                   "fine_grid": False}}


def _stats(x: torch.Tensor) -> str:
    return (f"mean {float(x.mean()):.3f}, p99 {float(x.flatten().quantile(0.99)):.3f}, max "
            f"{float(x.amax((1, 2, 3)).mean()):.3f}, |grad| {float((x[..., 1:] - x[..., :-1]).abs().mean()):.4f}")


def main() -> None:
    torch.set_num_threads(1)
    metrics = ReconMetrics()
    for acceleration in (4, 8):
        cfg = ProtocolConfig(setting=f"mri{acceleration}x")
        data = build_data(cfg)
        val_sources = _pools(cfg)[0]["val"].repeat_interleave(cfg.test_realisations, 0)  # at 2x, as build_data
        for name, components in VARIANTS.items():
            sim = ProspectiveMRI(cfg.image_size, cfg.level, acceleration, components=components)
            out = sim(val_sources, torch.Generator().manual_seed(2_000))
            op, y, gt = out["operator"], out["y"], out["gt"]
            zero_filled = metrics(magnitude(op.start(y)), gt)
            full = torch.cat([gt, torch.zeros_like(gt)], 1)
            oracle = metrics(magnitude(full - op.normal(full) + op.start(y)), gt)
            print(f"mri{acceleration}x {name}: zero-filled {float(zero_filled['psnr'].mean()):.2f} dB / "
                  f"{float(zero_filled['ssim'].mean()):.3f}; measured y + true unmeasured k-space "
                  f"{float(oracle['psnr'].mean()):.2f} dB / {float(oracle['ssim'].mean()):.3f}")
        if acceleration == 4:
            val = data["val"]
            print("S_img (clean):", _stats(data["clean"]))
            print("S_val ground truth:", _stats(val.gt))
            print("S_val zero-filled:", _stats(magnitude(val.operator.start(val.y))))


if __name__ == "__main__":
    main()
