"""Tuning runs scored on S_val only (never S_test): the gap-protocol data of one setting, one method trained per
variant, PSNR / SSIM of the validation split (``--validation true``: im-07, im-08 through the true simulator with
their ground truth) every ``n_iter / 6`` iterations. One JSON line per variant is appended to ``--out``.

    uv run python packages/ot-medrecon/benchmarks/tune_on_validation.py --setting mri4x --n-iter 600 \\
        --variant '{"kinetic_weight": 0.05}' --variant '{"augment_copies": 16}' --out runs/tune.jsonl
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from ot_medrecon.classical import classical_reconstruction
from ot_medrecon.metrics import ReconMetrics
from ot_medrecon.protocol import ProtocolConfig, build_data, train_method


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setting", default="mri4x")
    parser.add_argument("--method", default="kidot")
    parser.add_argument("--n-iter", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--validation", default="true", choices=("true", "nominal"))
    parser.add_argument("--variant", action="append", default=[], help="JSON ProtocolConfig overrides")
    parser.add_argument("--out", type=Path, default=Path("runs/tune.jsonl"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for text in args.variant or ["{}"]:
        overrides = json.loads(text)
        cfg = ProtocolConfig(setting=args.setting, n_iter=args.n_iter, validation=args.validation, **overrides)
        data = build_data(cfg)
        val = data["val"]
        classical = ReconMetrics()(classical_reconstruction(val.y, val.operator), val.gt)
        started = time.time()
        _, history = train_method(args.method, cfg, data, args.seed, out=None, eval_every=max(args.n_iter // 6, 1))
        curve = [(h["iter"], round(h["probe_psnr"], 3), round(h["probe_ssim"], 4))
                 for h in history if "probe_psnr" in h]
        record = {"setting": args.setting, "method": args.method, "seed": args.seed, "n_iter": args.n_iter,
                  "overrides": overrides, "val_classical": [float(classical["psnr"].mean()),
                                                            float(classical["ssim"].mean())],
                  "val_curve": curve, "seconds": round(time.time() - started)}
        with args.out.open("a") as fh:
            fh.write(json.dumps(record) + "\n")
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
