"""E1 / E2: the retrospective -> prospective gap protocol for MRI 4x and 8x Cartesian, CT sparse-view (60 views)
and CT low dose. Writes ``<out>/metrics-<setting>-L<level>-<preset>.json`` per setting, ``<out>/summary.json``
and a Markdown table ``<out>/table.md``; per-run results are cached, so re-running resumes.

CPU protocol (about 40 minutes on 2 shared cores, 2 worker processes of 1 thread):
    uv run python packages/ot-medrecon/benchmarks/gap_protocol.py --out runs/gap
Paper-size preset on a GPU:
    uv run python packages/ot-medrecon/benchmarks/gap_protocol.py --preset paper --device cuda --out runs/gap-paper
"""

from __future__ import annotations

import argparse
import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from ot_medrecon.classical import START_IMAGES

SETTINGS = ("mri4x", "mri8x", "ct-sparse60", "ct-lowdose")


def _run_setting(job: dict) -> dict:
    import torch

    torch.set_num_threads(job.pop("threads"))
    from ot_medrecon.protocol import ProtocolConfig, gap_benchmark

    out = job.pop("out")
    return gap_benchmark(ProtocolConfig(**job), out)


def _table(summaries: dict[str, dict]) -> str:
    lines = ["| setting | method | PSNR (dB) | SSIM | KIDOT margin PSNR (p) | KIDOT margin SSIM (p) |",
             "|---|---|---|---|---|---|"]
    for setting, s in summaries.items():
        margins = s.get("margins_of_kidot", {})
        for name, m in s["methods"].items():
            mg = margins.get(name)
            cells = [f"{mg[k]['margin']:+.{2 if k == 'psnr' else 3}f} (p={mg[k]['wilcoxon_p_greater']:.1e})"
                     if mg else "" for k in ("psnr", "ssim")]
            lines.append(f"| {setting} | {name} | {m['psnr']['mean']:.2f} ± {m['psnr']['std']:.2f} | "
                         f"{m['ssim']['mean']:.3f} ± {m['ssim']['std']:.3f} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/gap"))
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--level", type=int, default=3)
    parser.add_argument("--preset", default="cpu32")
    parser.add_argument("--n-iter", type=int, default=600)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--methods", default="classical,supervised_unet,kidot")
    parser.add_argument("--workers", type=int, default=2, help="parallel settings (processes)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker")
    parser.add_argument("--device", default="cpu", help="cpu | cuda")
    parser.add_argument("--null-space", action="store_true",
                        help="KIDOT drift in the null space of A (single-coil MRI only: keeps the measured k-space)")
    parser.add_argument("--kinetic-weight", type=float, default=0.2, help="KIDOT β")
    parser.add_argument("--cost-weight", type=float, default=0.3, help="KIDOT λ_c (weight of the path cost)")
    parser.add_argument("--cost-split", type=float, default=0.0,
                        help="MRI: fraction of measured lines held out of KIDOT's path input and scored by its cost")
    parser.add_argument("--start", default="measurement", choices=START_IMAGES,
                        help="KIDOT's path start: S(y), the data-consistent TV image or the phase-constrained TV "
                             "image (single-coil MRI)")
    parser.add_argument("--no-physics", dest="physics", action="store_false",
                        help="KIDOT without the gradient step A*(A I - y) in its velocity (spec E4 ablation)")
    parser.add_argument("--n-critic", type=int, default=1, help="critic steps per path step")
    parser.add_argument("--augment-copies", type=int, default=0,
                        help="MRI: augmented copies per S_img source image (also augments S_meas)")
    parser.add_argument("--brain-in-clean", action="store_true", help="MRI: add the 2 brain images to S_img")
    parser.add_argument("--validation", default="true", choices=("true", "nominal"),
                        help="simulator of the S_val probe (never used for training)")
    args = parser.parse_args()

    options = {"null_space": args.null_space, "kinetic_weight": args.kinetic_weight, "n_critic": args.n_critic,
               "cost_weight": args.cost_weight, "cost_split": args.cost_split, "start": args.start,
               "physics": args.physics,
               "augment_copies": args.augment_copies, "brain_in_clean": args.brain_in_clean,
               "validation": args.validation}
    jobs = [{"setting": s, "level": args.level, "preset": args.preset, "n_iter": args.n_iter,
             "seeds": tuple(int(x) for x in args.seeds.split(",")), "methods": tuple(args.methods.split(",")),
             "device": args.device, "out": args.out, "threads": args.threads, **options}
            for s in args.settings.split(",")]
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        summaries = dict(zip(args.settings.split(","), pool.map(_run_setting, jobs)))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summaries, indent=2, sort_keys=True))
    (args.out / "table.md").write_text(_table(summaries))
    print(_table(summaries))


if __name__ == "__main__":
    main()
