"""ot-cells command line: VGFM on single-cell time courses.

  ot-cells demo [--quick]                                    simulator, metrics.json and figures in --out
  ot-cells fit data.h5ad --time-key day --rep X_pca --out fitted.h5ad [--hold-out 4] [--preset NAME]
  ot-cells evaluate fitted.h5ad --out eval/                  W1 and mass error at every observed time
  ot-cells predict fitted.h5ad --times 3 4.5 --out pred.h5ad weighted predicted cells at any times

``fit --out`` is a folder, or an .h5ad path: the fitted AnnData is written there and the run's other files
(model.pt, metrics.json, losses.csv, figures, checkpoints) into the folder of the same name without suffix.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import anndata as ad  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402

from ot_core.cli_support import (  # noqa: E402
    UserError,
    build_parser,
    load_config,
    prepare_out_dir,
    resolve_device,
    run,
    write_metrics,
)
from ot_core.training import atomic_write_json  # noqa: E402

from . import datasets, plotting  # noqa: E402
from .config import PRESETS, VGFMConfig  # noqa: E402
from .vgfm import VGFM  # noqa: E402

CHECKPOINTS = "checkpoints"
#: lam of the demo: on the toggle switch, 0.5 attributes the branches' growth difference (Spearman 0.9 with the
#: true growth) where the generic default 5.0 spreads growth almost uniformly
DEMO_REG_M = 0.5


# ------------------------------------------------------------------------------------------ shared pieces
def _config(args: argparse.Namespace, preset: str, overrides: dict[str, Any]) -> VGFMConfig:
    base = VGFMConfig.preset(preset)
    overrides = {**overrides, "seed": args.seed, "device": str(resolve_device(args.device))}
    return load_config(VGFMConfig, args.config, overrides, base=base)


def _outputs(out: Path, default_name: str) -> tuple[Path, Path]:
    """(run folder, h5ad path) for an --out that is a folder or an .h5ad file."""
    if out.suffix == ".h5ad":
        return out.with_suffix(""), out
    return out, out / default_name


def _refuse_existing(path: Path, overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise UserError(f"{path} exists; pass --overwrite to replace it or choose another --out")


def _metrics(vg: VGFM, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    table = vg.evaluate()
    held = [float(t) for t in vg.snapshots.times[vg.held_out]]
    return {"per_time": table.to_dict(orient="records"), "held_out_time": held or None,
            "seed": vg.config.seed, "config": vg.config.to_dict(), **(extra or {})}


def _figures(vg: VGFM, adata: ad.AnnData, run_dir: Path) -> None:
    plotting.mass(vg, save=run_dir / "mass.png")
    plotting.trajectories(vg, save=run_dir / "trajectories.png")
    plotting.growth(adata, basis=vg.snapshots.rep, save=run_dir / "growth.png")
    plt.close("all")


def _write_run(vg: VGFM, adata: ad.AnnData, run_dir: Path, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """model.pt, config.json, losses.csv, metrics.json and figures of a fitted model; results into ``adata``."""
    vg.save(run_dir / "model.pt")
    atomic_write_json(vg.config.to_dict(), run_dir / "config.json")
    vg.losses.to_csv(run_dir / "losses.csv", index=False)
    vg.write(adata, overwrite=True)
    metrics = _metrics(vg, extra)
    write_metrics(run_dir, metrics)
    _figures(vg, adata, run_dir)
    return metrics


def _print_table(metrics: dict[str, Any]) -> None:
    print(f"{'time':>8} {'W1':>8} {'RME':>8} {'mass':>8} {'observed':>9}")
    for row in metrics["per_time"]:
        flag = "  (held out)" if row["held_out"] else ""
        print(f"{row['time']:8.3g} {row['w1']:8.4f} {row['rme']:8.4f} {row['mass_pred']:8.3f} {row['mass_obs']:9.3f}{flag}")


def _load_model(path: Path, data: Path | None) -> tuple[VGFM, ad.AnnData]:
    if path.suffix == ".h5ad":
        adata = datasets.read(path)
        return VGFM.load(adata), adata
    if data is None:
        raise UserError(f"{path} is a model file; pass --data with the AnnData or CSV it was fitted on")
    adata = datasets.read(data)
    return VGFM.load(path, adata), adata


# ------------------------------------------------------------------------------------------ demo
def add_demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="a tiny run (well under a minute) that checks the install")


def run_demo(args: argparse.Namespace) -> None:
    """Fit VGFM on the toggle-switch simulator (all times, then with t = 2 held out); write metrics and figures."""
    run_dir = prepare_out_dir(args.out, args.overwrite, args.resume)
    settings = {"reg_m": DEMO_REG_M, **({"steps": 100, "refine_epochs": 2} if args.quick else {})}
    cfg = _config(args, "small", settings)
    adata = datasets.toggle_switch(n0=100 if args.quick else 400, seed=args.seed)
    vg = VGFM(adata, time_key="time", rep="X_emb", config=cfg)
    vg.fit(checkpoint_dir=run_dir / CHECKPOINTS, resume=args.resume)
    truth = {"growth_true_vs_learned": _growth_agreement(vg, adata)}
    metrics = _write_run(vg, adata, run_dir, truth)
    if not args.quick:
        held = VGFM(adata, time_key="time", rep="X_emb", hold_out=2.0, config=cfg).fit(progress=True)
        metrics["hold_out_2"] = held.evaluate().to_dict(orient="records")
        write_metrics(run_dir, metrics)
    adata.write_h5ad(run_dir / "demo.h5ad")
    _print_table(metrics)
    print(f"growth (learned vs true): {truth['growth_true_vs_learned']}")
    print(f"wrote {run_dir}/metrics.json, mass.png, trajectories.png, growth.png, demo.h5ad")


def _growth_agreement(vg: VGFM, adata: ad.AnnData) -> dict[str, float]:
    from .metrics import growth_correlation

    g = vg.growth(adata.obsm["X_emb"], adata.obs["time"].to_numpy())
    return growth_correlation(g, adata.obs["growth_true"].to_numpy())


# ------------------------------------------------------------------------------------------ fit
def add_fit_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", type=Path, help="an .h5ad file, or a snapshot CSV (time column 'samples')")
    p.add_argument("--time-key", default="time", help="obs column of collection times (default: %(default)s)")
    p.add_argument("--rep", default=None, help="obsm key of the representation (default: X_pca, X_emb for CSV)")
    p.add_argument("--n-dims", type=int, default=None, help="use the first N dimensions of --rep")
    p.add_argument("--hold-out", type=float, nargs="*", default=None, help="time point(s) left out of training")
    p.add_argument("--preset", default="default", choices=sorted(PRESETS), help="settings preset (default: %(default)s)")
    for flag, typ in (("--steps", int), ("--refine-epochs", int), ("--epsilon", float), ("--reg-m", float)):
        p.add_argument(flag, type=typ, default=None, help=f"override the preset's {flag[2:].replace('-', '_')}")
    p.add_argument("--calibrate-mass", action="store_true", default=None,
                   help="fit per-interval growth constants to the observed relative masses (calibrate_mass)")


def run_fit(args: argparse.Namespace) -> None:
    """Fit VGFM to an AnnData time course; write the fitted AnnData, model, metrics and figures."""
    run_dir, h5ad_path = _outputs(args.out, "fitted.h5ad")
    _refuse_existing(h5ad_path, args.overwrite or args.resume)
    adata = datasets.read(args.data)
    rep = args.rep or ("X_emb" if args.data.suffix == ".csv" else "X_pca")
    overrides = {k: getattr(args, k) for k in ("steps", "refine_epochs", "epsilon", "reg_m", "calibrate_mass")}
    cfg = _config(args, args.preset, overrides)
    vg = VGFM(adata, time_key=args.time_key, rep=rep, n_dims=args.n_dims, hold_out=args.hold_out, config=cfg)
    run_dir = prepare_out_dir(run_dir, args.overwrite, args.resume)
    vg.fit(checkpoint_dir=run_dir / CHECKPOINTS, resume=args.resume)
    metrics = _write_run(vg, adata, run_dir)
    adata.write_h5ad(h5ad_path)
    _print_table(metrics)
    print(f"wrote {h5ad_path} and {run_dir}/")


# ------------------------------------------------------------------------------------------ evaluate
def add_evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path, help="a fitted .h5ad (from fit) or a model.pt (then pass --data)")
    p.add_argument("--data", type=Path, default=None, help="the data of a model.pt")


def run_evaluate(args: argparse.Namespace) -> None:
    """W1 and relative mass error of a fitted model at every observed time."""
    vg, _ = _load_model(args.model, args.data)
    run_dir = prepare_out_dir(args.out, args.overwrite, args.resume)
    metrics = _metrics(vg)
    write_metrics(run_dir, metrics)
    plotting.mass(vg, save=run_dir / "mass.png")
    plt.close("all")
    _print_table(metrics)


# ------------------------------------------------------------------------------------------ predict
def add_predict_args(p: argparse.ArgumentParser) -> None:
    add_evaluate_args(p)
    p.add_argument("--times", type=float, nargs="+", required=True, help="real times to predict")
    p.add_argument("--n-cells", type=int, default=None, help="start from this many first-time cells (default: all)")
    p.add_argument("--start-time", type=float, default=None, help="start from the cells of this observed time")


def run_predict(args: argparse.Namespace) -> None:
    """Predicted weighted cells at the requested times (AnnData: obsm[rep], obs time, mass, weight)."""
    run_dir, h5ad_path = _outputs(args.out, "predictions.h5ad")
    _refuse_existing(h5ad_path, args.overwrite)
    vg, _ = _load_model(args.model, args.data)
    pred = vg.predict(args.times, n_cells=args.n_cells, start_time=args.start_time, seed=args.seed)
    h5ad_path.parent.mkdir(parents=True, exist_ok=True)
    pred.write_h5ad(h5ad_path)
    for t, m in zip(pred.uns["relative_mass_pred"]["time"], pred.uns["relative_mass_pred"]["mass"]):
        print(f"t = {t:g}: predicted relative mass {m:.4f}")
    print(f"wrote {h5ad_path}")


COMMANDS = {
    "demo": (add_demo_args, run_demo),
    "fit": (add_fit_args, run_fit),
    "evaluate": (add_evaluate_args, run_evaluate),
    "predict": (add_predict_args, run_predict),
}


def main(argv: list[str] | None = None) -> int:
    return run(build_parser("ot-cells", __doc__, COMMANDS, default_out="ot-cells-runs"), argv)


if __name__ == "__main__":
    raise SystemExit(main())
