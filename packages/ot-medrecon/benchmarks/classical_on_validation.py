"""The classical MRI references scored on S_val only (never S_test), the tuning record of their defaults: zero-filled,
the data-consistent TV image and the phase-constrained TV image over a grid of its TV weight and the width of its
phase filter (6 configurations, ε = 0.01, 100 FISTA steps). One JSON line per (preset, setting, configuration) is
appended to ``--out``.

    uv run python packages/ot-medrecon/benchmarks/classical_on_validation.py --out runs/classical-val.jsonl
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import torch
from ot_medrecon.classical import classical_reconstruction, phase_constrained_tv
from ot_medrecon.metrics import ReconMetrics
from ot_medrecon.physics import magnitude
from ot_medrecon.protocol import ProtocolConfig, build_data


def _scores(image: torch.Tensor, gt: torch.Tensor) -> list[float]:
    metrics = ReconMetrics()(image, gt)
    return [round(float(metrics["psnr"].mean()), 3), round(float(metrics["ssim"].mean()), 4)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default="cpu32,cpu64")
    parser.add_argument("--settings", default="mri4x,mri8x")
    parser.add_argument("--weights", default="0.003,0.01,0.03", help="TV weights λ of the phase-constrained TV")
    parser.add_argument("--widths", default="2,4", help="phase filter widths (k-space samples)")
    parser.add_argument("--out", type=Path, default=Path("runs/classical-val.jsonl"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for preset, setting in itertools.product(args.presets.split(","), args.settings.split(",")):
        val = build_data(ProtocolConfig(setting=setting, preset=preset))["val"]
        records = [{"method": start, **dict(zip(("psnr", "ssim"), _scores(
            classical_reconstruction(val.y, val.operator, start), val.gt)))} for start in ("measurement", "tv")]
        for weight, width in itertools.product(args.weights.split(","), args.widths.split(",")):
            state = phase_constrained_tv(val.y, val.operator, weight=float(weight), phase_width=float(width))
            psnr, ssim = _scores(magnitude(state), val.gt)
            records.append({"method": "phase_tv", "weight": float(weight), "phase_width": float(width),
                            "psnr": psnr, "ssim": ssim})
        with args.out.open("a") as fh:
            for record in records:
                line = json.dumps({"preset": preset, "setting": setting, **record})
                fh.write(line + "\n")
                print(line, flush=True)


if __name__ == "__main__":
    main()
