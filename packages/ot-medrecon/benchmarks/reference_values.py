"""Numbers that need no training: adjointness of every operator, operator norms, zero-filled PSNR of the
Deep-ADMM-Net chest images (spec §5.2), FBP of Shepp–Logan, and the zero-filled / FBP PSNR at each prospective
level. Writes ``<out>/reference_values.json``.

    uv run python packages/ot-medrecon/benchmarks/reference_values.py --out runs/reference
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from ot_medrecon.datasets import deep_admm_net, deep_admm_net_masks, ellipse_phantoms, shared_data_root, shepp_logan
from ot_medrecon.metrics import ReconMetrics
from ot_medrecon.physics import (MultiCoilMRI, ParallelBeamCT, SingleCoilMRI, birdcage_maps, cartesian_mask,
                                 check_adjoint, magnitude, operator_norm)
from ot_medrecon.simulate import ProspectiveCT, ProspectiveMRI


def adjointness() -> dict:
    g = torch.Generator().manual_seed(0)
    masks = torch.stack([cartesian_mask(64, 4, 0.08, generator=g) for _ in range(4)])
    ops = {"SingleCoilMRI 64² 4x": SingleCoilMRI(masks),
           "MultiCoilMRI 64² 4x 8 coils": MultiCoilMRI(masks, birdcage_maps(8, 64)),
           "ParallelBeamCT 64² 60 views": ParallelBeamCT(64, 60),
           "ParallelBeamCT 64² 120 views COR 2": ParallelBeamCT(64, 120, cor_offset=2.0)}
    return {name: {"rel_error_float64": check_adjoint(op, torch.float64),
                   "rel_error_float32": check_adjoint(op, torch.float32),
                   "norm": operator_norm(op)} for name, op in ops.items()}


def deep_admm_reference() -> dict | None:
    if shared_data_root() is None:
        return None
    out = {}
    for size in (256, 64, 32):
        images, _ = deep_admm_net(size=size)
        masks, names = deep_admm_net_masks(size=size)
        x = torch.cat([images, torch.zeros_like(images)], 1).double()
        for mask, name in zip(masks[1:], names[1:]):
            op = SingleCoilMRI(mask)
            psnr = ReconMetrics()(magnitude(op.start(op.A(x))).float(), images)["psnr"]
            out[f"{size}px {name.split('/')[-1]}"] = [float(psnr.mean()), float(psnr.std(unbiased=False))]
    return out


def level_table(size: int = 32) -> dict:
    metric, out = ReconMetrics(), {}
    images = ellipse_phantoms(64, 2 * size, seed=20_000)
    for level in range(4):
        for name, sim in {"mri4x": ProspectiveMRI(size, level, 4), "mri8x": ProspectiveMRI(size, level, 8),
                          "ct-sparse60": ProspectiveCT(size, level, 60),
                          "ct-lowdose": ProspectiveCT(size, level, 120, dose=0.05, snr_db=30.0)}.items():
            acq = sim(images, torch.Generator().manual_seed(level))
            s = metric(magnitude(acq["operator"].start(acq["y"])), acq["gt"])
            out[f"{name} L{level}"] = {"psnr": float(s["psnr"].mean()), "ssim": float(s["ssim"].mean())}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/reference"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.time()
    x = shepp_logan(64).double()
    op = ParallelBeamCT(64, 45)
    fbp = ReconMetrics()(op.fbp(op.A(x)).float(), x.float())
    result = {"adjointness": adjointness(), "deep_admm_net_zero_filled_psnr": deep_admm_reference(),
              "shepp_logan_64_fbp_45_views": {"psnr": float(fbp["psnr"]), "ssim": float(fbp["ssim"])},
              "classical_by_level_32px_ellipses": level_table(), "seconds": time.time() - start}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "reference_values.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
