"""ot-medrecon: KIDOT reconstruction of MRI and CT from unpaired data.

  ot-medrecon demo [--modality mri|ct] [--quick]      end to end on embedded phantoms (no download)
  ot-medrecon fit --config fit.toml                    train KIDOT on your measurements and clean images
  ot-medrecon evaluate --checkpoint model.pt --data test.npz
  ot-medrecon evaluate --protocol gap --setting mri4x --level 3 --seeds 0,1,2
  ot-medrecon predict --checkpoint model.pt --input meas.npz --output recon.nii.gz
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from ot_core import cli_support, training

from .classical import START_IMAGES

__all__ = ["main", "FitConfig"]


# ------------------------------------------------------------------------------------------ demo
def _add_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument("--modality", choices=("mri", "ct"), default="mri")
    p.add_argument("--quick", action="store_true", help="a few iterations only (well under a minute)")
    p.add_argument("--n-iter", type=int, help="training iterations per method (default 300, --quick 15)")
    p.add_argument("--level", type=int, default=3, choices=(0, 1, 2, 3), help="prospective severity level")


def run_demo(args: argparse.Namespace) -> None:
    """Train a supervised U-Net on nominal pairs and KIDOT on unpaired prospective measurements of embedded
    phantoms, test both on held-out prospective data; write metrics.json and PNG figures."""
    from .plotting import plot_history, plot_path, plot_reconstructions
    from .protocol import ProtocolConfig, build_data, run_method

    out = cli_support.prepare_out_dir(args.out, args.overwrite, args.resume)
    training.seed_everything(args.seed)
    n_iter = args.n_iter or (15 if args.quick else 300)
    setting = "mri4x" if args.modality == "mri" else "ct-sparse60"
    cfg = ProtocolConfig(setting=setting, level=args.level, preset="test", n_iter=n_iter, batch_size=8,
                         seeds=(args.seed,), embedded=True, meas_realisations=4, test_realisations=2,
                         ct_pool=(96, 96, 16, 8))
    data = build_data(cfg)
    results, recons, scores = {}, {}, {}
    for method in ("classical", "supervised_unet", "kidot"):
        result, model = run_method(method, cfg, data, args.seed, out / "checkpoints" / method, return_model=True)
        results[method] = result
        test = data["test"]
        recons[method] = (model.reconstruct(test.y, test.operator) if model is not None
                          else result["prediction"])
        scores[method] = {k: torch.tensor(v) for k, v in result["per_case"].items()}
        if method == "kidot":
            with torch.no_grad():
                path = model.flow(test.y[:2], test.operator.subset(torch.arange(2)), return_path=True)
            plot_path(path, out / "kidot_path.png")
            plot_history(result["history"], out / "kidot_training.png")
    plot_reconstructions(data["test"].gt, recons, out / "reconstructions.png", scores)
    summary = {m: {k: float(torch.tensor(v).mean()) for k, v in r["per_case"].items()} for m, r in results.items()}
    cli_support.write_metrics(out, {"setting": setting, "level": args.level, "n_iter": n_iter, "seed": args.seed,
                                    "data": data["source"], "n_test_cases": len(data["test"]),
                                    "mean": summary, "config": dataclasses.asdict(cfg)})
    for method, values in summary.items():
        print(f"{method:>16}: PSNR {values['psnr']:.2f} dB  SSIM {values['ssim']:.3f}")
    print(f"wrote {out / 'metrics.json'} and figures to {out}")


# ------------------------------------------------------------------------------------------ fit
@dataclass
class FitConfig:
    """``fit`` settings (JSON/TOML ``--config`` or flags). ``measurements``: an ``.npz`` archive (see
    ``ot_medrecon.io``); ``clean_images``: a folder of NIfTI / DICOM / PNG / .npy files or an ``.npz`` with
    ``images``; ``probe``: optional paired ``.npz`` (with ``gt``) scored during training."""

    measurements: str | None = None
    clean_images: str | None = None
    probe: str | None = None
    preset: str = "cpu32"
    n_iter: int | None = None
    batch_size: int | None = None
    cost_weight: float = 0.3
    kinetic_weight: float = 0.2
    lr_flow: float = 2e-4
    lr_critic: float = 4e-4
    null_space: bool = False
    cost_split: float = 0.0
    start: str = "measurement"
    ct_window: tuple[float, float] | None = None


def _add_fit(p: argparse.ArgumentParser) -> None:
    p.add_argument("--measurements", help="measurement archive .npz (y, mask | angles, img_size)")
    p.add_argument("--clean-images", dest="clean_images", help="folder or .npz of clean images (unpaired)")
    p.add_argument("--preset", choices=("test", "cpu32", "cpu64", "paper"))
    p.add_argument("--n-iter", dest="n_iter", type=int)
    p.add_argument("--batch-size", dest="batch_size", type=int)
    p.add_argument("--null-space", dest="null_space", action="store_true", default=None,
                   help="single-coil MRI: the learned drift only fills the unmeasured k-space")
    p.add_argument("--start", choices=START_IMAGES,
                   help="path start: S(y) (zero-filled / FBP, default), tv or phase_tv (single-coil MRI: the "
                        "data-consistent or the phase-constrained TV image)")


def run_fit(args: argparse.Namespace) -> None:
    """Train KIDOT on unpaired measurements and clean images; write model.pt, history and metrics.json."""
    from .datasets import load_images
    from .io import load_measurements, save_model
    from .kidot import KIDOT
    from .nets import preset
    from .physics import ParallelBeamCT
    from .plotting import plot_history

    overrides = {k: getattr(args, k, None) for k in ("measurements", "clean_images", "preset", "n_iter",
                                                      "batch_size", "null_space", "start")}
    cfg = cli_support.load_config(FitConfig, args.config, overrides)
    if not cfg.measurements or not cfg.clean_images:
        raise cli_support.UserError("fit needs measurements=<meas.npz> and clean_images=<folder or .npz> "
                                    "(in --config or as --measurements / --clean-images)")
    meas = load_measurements(cfg.measurements)
    size = meas.operator.image_shape[-1]
    clean = load_images(cfg.clean_images, size=size, ct_window=cfg.ct_window)
    probe = load_measurements(cfg.probe) if cfg.probe else None
    out = cli_support.prepare_out_dir(args.out, args.overwrite, args.resume)
    spec_p = preset(cfg.preset)
    modality = "ct" if isinstance(meas.operator, ParallelBeamCT) else "mri"
    model = KIDOT.from_preset(cfg.preset, modality, size, cost_weight=cfg.cost_weight,
                              kinetic_weight=cfg.kinetic_weight, lr_flow=cfg.lr_flow, lr_critic=cfg.lr_critic,
                              null_space=cfg.null_space, cost_split=cfg.cost_split, start=cfg.start)
    model.to(cli_support.resolve_device(args.device))
    history = model.fit(meas, clean, n_iter=cfg.n_iter or spec_p.n_iter, batch_size=cfg.batch_size or
                        spec_p.batch_size, probe=probe, out=out, resume=args.resume, seed=args.seed)
    save_model(model, out / "model.pt", {"method": "kidot", "preset": cfg.preset, "modality": modality,
                                         "image_size": size, "null_space": cfg.null_space, "start": cfg.start})
    plot_history(history, out / "training.png")
    cli_support.write_metrics(out, {"config": dataclasses.asdict(cfg), "final": history[-1] if history else {}})
    print(f"wrote {out / 'model.pt'}")


# ------------------------------------------------------------------------------------------ evaluate
def _add_evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", type=Path, help="model.pt written by fit")
    p.add_argument("--data", type=Path, help="paired .npz (measurements with gt)")
    p.add_argument("--protocol", choices=("gap",), help="run the retrospective->prospective gap protocol")
    p.add_argument("--setting", default="mri4x", help="gap protocol: mri4x | mri8x | ct-sparse60 | ct-lowdose")
    p.add_argument("--level", type=int, default=3)
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    p.add_argument("--preset", default="cpu32")
    p.add_argument("--n-iter", dest="n_iter", type=int)
    p.add_argument("--null-space", dest="null_space", action="store_true",
                   help="gap protocol: KIDOT with the null-space drift (BENCHMARKS.md section 2.1)")
    p.add_argument("--start", choices=START_IMAGES, default="measurement",
                   help="gap protocol (MRI): KIDOT's path start; tv / phase_tv also score that classical "
                        "reference (BENCHMARKS.md sections 2.3, 2.4)")


def run_evaluate(args: argparse.Namespace) -> None:
    """Score a trained model on paired data, or run the gap protocol (--protocol gap)."""
    out = cli_support.prepare_out_dir(args.out, args.overwrite, args.resume)
    if args.protocol == "gap":
        from .protocol import ProtocolConfig, gap_benchmark

        seeds = tuple(int(s) for s in args.seeds.split(","))
        reference = (f"classical_{args.start}",) if args.start != "measurement" else ()
        methods = ("classical", "supervised_unet", "kidot") + reference
        cfg = ProtocolConfig(setting=args.setting, level=args.level, preset=args.preset, n_iter=args.n_iter,
                             seeds=seeds, methods=methods, null_space=args.null_space, start=args.start)
        summary = gap_benchmark(cfg, out)
        cli_support.write_metrics(out, summary)
        for name, m in summary["methods"].items():
            print(f"{name:>20}: PSNR {m['psnr']['mean']:.2f} ± {m['psnr']['std']:.2f}  "
                  f"SSIM {m['ssim']['mean']:.3f} ± {m['ssim']['std']:.3f}")
        return
    if args.checkpoint is None or args.data is None:
        raise cli_support.UserError("evaluate needs --checkpoint and --data (or --protocol gap)")
    from .io import load_measurements, load_model

    model, spec = load_model(args.checkpoint)
    data = load_measurements(args.data)
    scores = model.evaluate(data)
    cli_support.write_metrics(out, {"checkpoint": str(args.checkpoint), "spec": spec, "n_cases": len(data),
                                    "mean": {k: float(v.mean()) for k, v in scores.items()},
                                    "per_case": {k: v.tolist() for k, v in scores.items()}})
    print(", ".join(f"{k} {float(v.mean()):.4g}" for k, v in scores.items()))


# ------------------------------------------------------------------------------------------ predict
def _add_predict(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--input", type=Path, required=True,
                   help="measurements .npz, or an image (NIfTI/DICOM/PNG/.npy) to acquire with --simulate")
    p.add_argument("--simulate", choices=("nominal", "prospective"), default="prospective",
                   help="for image inputs: which acquisition to simulate (4x MRI / 60-view CT)")
    p.add_argument("--output", type=Path, help="NIfTI file (default: <out>/recon.nii.gz)")


def run_predict(args: argparse.Namespace) -> None:
    """Reconstruct measurements (or a simulated acquisition of an image) and write a NIfTI volume."""
    from .datasets import load_images
    from .engine import Measurements
    from .io import load_measurements, load_model, save_nifti
    from .simulate import NominalCT, NominalMRI, ProspectiveCT, ProspectiveMRI

    model, spec = load_model(args.checkpoint)
    size = spec["image_size"]
    if args.input.suffix == ".npz" and "y" in _npz_keys(args.input):
        meas = load_measurements(args.input)
    else:
        images = load_images(args.input, size=2 * size)
        kinds = {("mri", "nominal"): lambda: NominalMRI(size), ("mri", "prospective"): lambda: ProspectiveMRI(size),
                 ("ct", "nominal"): lambda: NominalCT(size), ("ct", "prospective"): lambda: ProspectiveCT(size)}
        sim = kinds[(spec["modality"], args.simulate)]()
        meas = Measurements.from_simulation(sim(images, torch.Generator().manual_seed(args.seed)))
    if meas.operator.image_shape[-1] != size:
        raise cli_support.UserError(f"the measurements are on a {meas.operator.image_shape[-1]} px grid but the "
                                    f"model was trained at {size} px")
    out = cli_support.prepare_out_dir(args.out, args.overwrite, args.resume)
    output = args.output or out / "recon.nii.gz"
    if output.exists() and not args.overwrite:
        raise cli_support.UserError(f"--output {output} exists; pass --overwrite or another name")
    recon = model.reconstruct(meas.y, meas.operator)
    save_nifti(output, recon)
    print(f"wrote {output} ({recon.shape[0]} images of {size}x{size})")


def _npz_keys(path: Path) -> list[str]:
    import numpy as np

    with np.load(path) as data:
        return list(data.keys())


def main(argv: list[str] | None = None) -> int:
    parser = cli_support.build_parser("ot-medrecon", __doc__, {
        "demo": (_add_demo, run_demo),
        "fit": (_add_fit, run_fit),
        "evaluate": (_add_evaluate, run_evaluate),
        "predict": (_add_predict, run_predict),
    })
    return cli_support.run(parser, argv)


if __name__ == "__main__":
    sys.exit(main())
