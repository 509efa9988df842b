"""ot-core command line: ``ot-core demo`` and ``ot-core check``."""

from __future__ import annotations

import argparse
import platform
import time

import torch

from . import __version__, datasets, solve, solve_sample
from .cli_support import build_parser, prepare_out_dir, resolve_device, run, write_metrics
from .training import seed_everything


def _add_demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n", type=int, default=5000, help="points per cloud (default: %(default)s)")
    p.add_argument("--reg", type=float, default=0.01, help="epsilon relative to max C (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="n = 1000: a few seconds")


def run_demo(args: argparse.Namespace) -> dict:
    """Solve balanced, semi-relaxed and partial OT on embedded point clouds; write metrics.json and PNGs."""
    out = prepare_out_dir(args.out, args.overwrite, args.resume)
    device = resolve_device(args.device)
    n = 1000 if args.quick else args.n
    if n < 2:
        raise ValueError(f"--n must be >= 2, got {n}")
    seed_everything(args.seed)
    metrics: dict = {"ot_core_version": __version__, "n": n, "device": str(device)}

    # 1. balanced: a Gaussian blob onto two moons, lazily (the n x n cost is never needed for the answer)
    x = datasets.gaussians(n, [0.5, 0.25], [[0.3, 0.0], [0.0, 0.3]], seed=args.seed).float().to(device)
    y = datasets.two_moons(n, noise=0.05, seed=args.seed + 1).float().to(device)
    t0 = time.perf_counter()
    res = solve_sample(x, y, reg=args.reg, reg_scale="max", tol=1e-4, max_iter=5000, grad="detach")
    elapsed = time.perf_counter() - t0
    rows, cols = res.marginals
    marginal_error = float((rows - 1 / n).abs().sum() + (cols - 1 / n).abs().sum())
    mapped = res.lazy_plan.barycentric_map()
    metrics["balanced"] = {"value": float(res.value), "value_linear": float(res.value_linear),
                           "n_iter": res.n_iter, "converged": res.converged, "seconds": elapsed,
                           "marginal_error_l1": marginal_error, "backend": res.backend, "eps": res.extra["eps"]}
    print(f"balanced OT, n = m = {n}: value {float(res.value):.6f}, {res.n_iter} iterations, "
          f"{elapsed:.2f} s ({res.backend}), marginal error {marginal_error:.2e}")

    # 2. semi-relaxed: growth of two clusters (truth 1 and 2)
    xs, ys, growth = datasets.growth_pair(sep=4.0, seed=args.seed)
    semi = solve_sample(xs, ys, torch.ones(len(xs), dtype=xs.dtype), torch.ones(len(ys), dtype=ys.dtype), reg=0.05,
                        unbalanced=(10.0, float("inf")), method="semidual", tol=1e-9, max_iter=2000, grad="detach")
    factor = semi.lazy_plan.row_sums()
    half = len(xs) // 2
    metrics["semi_relaxed"] = {"growth_cluster_1": float(factor[:half].mean()), "growth_cluster_2":
                               float(factor[half:].mean()), "true": [1.0, 2.0], "n_iter": semi.n_iter}
    print(f"semi-relaxed OT: growth {float(factor[:half].mean()):.3f} / {float(factor[half:].mean()):.3f} "
          "(truth 1 / 2)")

    # 3. partial: no mass should leave the class absent from the target
    xp, yp, lx, _ = datasets.partial_pair(seed=args.seed)
    part = solve(torch.cdist(xp, yp) ** 2, mass=2 / 3)
    private = float(part.plan[lx == 2].sum())
    metrics["partial"] = {"mass": 2 / 3, "mass_on_private_class": private, "value": float(part.value)}
    print(f"exact partial OT (mass 2/3): mass sent from the private class {private:.2e}")

    _plot_map(x.cpu(), y.cpu(), mapped.cpu(), out / "barycentric_map.png")
    write_metrics(out, metrics)
    print(f"wrote {out / 'metrics.json'} and {out / 'barycentric_map.png'}")
    return metrics


def _plot_map(x: torch.Tensor, y: torch.Tensor, mapped: torch.Tensor, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5))
    k = min(len(x), 400)
    ax.scatter(*y.T, s=2, c="tab:orange", alpha=0.3, label="target y")
    ax.scatter(*x[:k].T, s=4, c="tab:blue", label="source x")
    for i in range(k):
        ax.plot([x[i, 0], mapped[i, 0]], [x[i, 1], mapped[i, 1]], lw=0.3, c="0.4")
    ax.scatter(*mapped[:k].T, s=4, c="tab:green", label="barycentric map T(x)")
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title("entropic OT: barycentric map of a Gaussian onto two moons")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _add_check_args(p: argparse.ArgumentParser) -> None:
    pass


def run_check(args: argparse.Namespace) -> None:
    """Print versions and the available backends; run a small self-test against POT."""
    import numpy as np
    import ot

    from .ops import triton_available

    print(f"ot-core {__version__}, torch {torch.__version__}, POT {ot.__version__}, Python {platform.python_version()}")
    print(f"CUDA available: {torch.cuda.is_available()}; Triton kernels usable: {triton_available()}")
    gen = torch.Generator().manual_seed(args.seed)
    C = torch.rand(50, 40, dtype=torch.float64, generator=gen)
    ours = solve(C, reg=0.05, tol=1e-12, max_iter=10_000).plan
    ref = ot.sinkhorn(np.full(50, 1 / 50), np.full(40, 1 / 40), C.numpy(), 0.05, method="sinkhorn_log",
                      stopThr=1e-13, numItermax=100_000)
    err = float((ours - torch.from_numpy(ref)).abs().max())
    print(f"self-test vs POT sinkhorn_log (50 x 40, eps 0.05): max plan difference {err:.1e}")
    if err > 1e-10:
        raise RuntimeError("self-test failed: ot-core and POT disagree")


def main(argv=None) -> int:
    parser = build_parser("ot-core", __doc__, {"demo": (_add_demo_args, run_demo), "check": (_add_check_args, run_check)},
                          default_out="ot-core-runs")
    return run(parser, argv)


if __name__ == "__main__":
    raise SystemExit(main())
