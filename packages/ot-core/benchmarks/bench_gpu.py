"""GPU benchmark of ot-core's fused Triton Sinkhorn backend against torch and third-party solvers.

One run does two things:

1. correctness: at n = m = ``--check-n`` and every d, ot-core Triton (strict fp32 and TF32) runs a fixed
   number of balanced Sinkhorn iterations next to the chunked torch backend in float64 (the reference), and
   the potentials (up to their constant) and the envelope gradient in x are compared (spec 5.3: fp32 rtol
   1e-4, TF32 1e-2);
2. timing: at n = m in ``--sizes`` and d in ``--dims``, time per Sinkhorn iteration and peak extra memory of
   ot-core Triton (fp32, TF32), ot-core chunked torch, POT's torch backend (dense ``sinkhorn_log``), GeomLoss
   (``backend="online"`` when KeOps compiles, else ``"tensorized"``) and FlashSinkhorn (fp32, TF32), with the
   fraction of the physical floor of spec 5.5 (H200 figures: exp-bound ~5 ms per iteration at n = m = 1e5).

Time per iteration = (t(N) - t(N / 4)) / (iterations done in between) after a warm-up run (compilation,
autotuning), so set-up costs cancel. Competitors that are not importable (or fail, e.g. out of memory) are
skipped with the reason in the table. Writes bench_gpu.json, bench_gpu.md and bench_gpu.png under ``--out``.

    uv run python packages/ot-core/benchmarks/bench_gpu.py --out out/bench_gpu
    uv run python packages/ot-core/benchmarks/bench_gpu.py --smoke --out /tmp/bench  # CPU, interpreter

FlashSinkhorn is not in the lock (its unconditional triton requirement breaks the universal lock on macOS);
install it by hand: ``uv pip install --no-deps flash-sinkhorn==0.4.1`` (``uv run`` keeps it installed).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

# spec 5.5, H200: exp units (132 SMs x 16 ex2/clk x 1.9 GHz), fp32 SIMT FMA and TF32 tensor-core rates
EXP_PER_S = 4.0e12
DOT_FLOP_PER_S = {"fp32": 67e12, "tf32": 395e12, "tf32x3": 395e12 / 3}


@dataclass
class Row:
    method: str
    n: int
    d: int
    precision: str
    ms_per_iter: float | None = None
    peak_mib: float | None = None
    floor_ms: float | None = None
    floor_fraction: float | None = None  # floor / measured time (1 = at the physical limit)
    note: str = ""


@dataclass
class Check:
    method: str
    d: int
    potential_err: float  # max|f - f64 - const| / max|f64|
    grad_err: float  # max|grad_x - grad_x64| / max|grad_x64|
    tol: float
    passed: bool


@dataclass
class Report:
    env: dict
    checks: list[Check] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)


def floor_ms(n: int, m: int, d: int, precision: str) -> float:
    """Physical floor of one alternating iteration (two passes over n m pairs), spec 5.5, in ms."""
    exp_s = 2 * n * m / EXP_PER_S
    dot_s = 2 * 2 * n * m * d / DOT_FLOP_PER_S[precision]
    return 1e3 * max(exp_s, dot_s)


# --------------------------------------------------------------------------------------------- problems
def make_points(n: int, d: int, device, seed: int = 0):
    """x, y (n, d) float32, |x|^2 ~ 1 (so C ~ 2 and reg = 0.05 gives C / eps ~ 40)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen) / math.sqrt(d)
    y = torch.randn(n, d, generator=gen) / math.sqrt(d) + 0.5 / math.sqrt(d)
    return x.to(device), y.to(device)


def otcore_solver(x, y, reg, backend, precision="ieee") -> Callable[[int], int]:
    import ot_core as otc

    def run(n_iter: int) -> int:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # fixed iteration counts do not converge on purpose
            otc.solve_sample(x, y, reg=reg, backend=backend, precision=precision, max_iter=n_iter, tol=1e-30,
                             check_every=n_iter, grad="detach")
        return n_iter

    return run


def pot_solver(x, y, reg) -> Callable[[int], int]:
    import ot

    a = x.new_full((x.shape[0],), 1.0 / x.shape[0])
    b = y.new_full((y.shape[0],), 1.0 / y.shape[0])

    def run(n_iter: int) -> int:
        M = ot.dist(x, y)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ot.sinkhorn(a, b, M, reg, method="sinkhorn_log", numItermax=n_iter, stopThr=0.0)
        return n_iter

    return run


def geomloss_solver(x, y, reg, backend) -> Callable[[int], int]:
    """GeomLoss runs an eps-scaling schedule; n_iter picks the scaling, the schedule length is returned."""
    from geomloss import SamplesLoss
    from geomloss._legacy.sinkhorn_divergence import epsilon_schedule, max_diameter

    blur = math.sqrt(reg / 2)  # GeomLoss p = 2 cost is |x - y|^2 / 2 with eps = blur^2
    diameter = max_diameter(x, y)

    def run(n_iter: int) -> int:
        scaling = (blur / diameter) ** (1.0 / max(1, n_iter - 2))
        loss = SamplesLoss("sinkhorn", p=2, blur=blur, scaling=scaling, diameter=diameter, debias=False,
                           potentials=True, backend=backend)
        loss(x, y)
        return len(epsilon_schedule(2, diameter, blur, scaling))

    return run


def flash_solver(x, y, reg, tf32: bool) -> Callable[[int], int]:
    from flash_sinkhorn import SamplesLoss

    def run(n_iter: int) -> int:
        loss = SamplesLoss("sinkhorn", p=2, backend="alternating", use_epsilon_scaling=False, eps=reg,
                           n_iters=n_iter, allow_tf32=tf32, half_cost=False, debias=False, potentials=True)
        loss(x, y)
        return n_iter

    return run


def competitors(x, y, reg, on_gpu: bool, geomloss_backend: str):
    """(method, precision, factory) in table order; a factory may raise ImportError (then skipped)."""
    return [
        ("ot-core triton", "fp32", lambda: otcore_solver(x, y, reg, "triton", "ieee")),
        ("ot-core triton", "tf32", lambda: otcore_solver(x, y, reg, "triton", "tf32")),
        ("ot-core chunked torch", "fp32", lambda: otcore_solver(x, y, reg, "chunked")),
        ("POT torch dense", "fp32", lambda: pot_solver(x, y, reg)),
        (f"GeomLoss {geomloss_backend}", "fp32", lambda: geomloss_solver(x, y, reg, geomloss_backend)),
        ("FlashSinkhorn", "fp32", lambda: _needs_gpu(on_gpu) or flash_solver(x, y, reg, tf32=False)),
        ("FlashSinkhorn", "tf32", lambda: _needs_gpu(on_gpu) or flash_solver(x, y, reg, tf32=True)),
    ]


def _needs_gpu(on_gpu: bool) -> None:
    if not on_gpu:
        raise ImportError("needs CUDA")


# --------------------------------------------------------------------------------------------- measuring
def _sync(on_gpu: bool) -> None:
    if on_gpu:
        import torch

        torch.cuda.synchronize()


def measure(run: Callable[[int], int], iters: int, on_gpu: bool) -> tuple[float, float | None]:
    """(ms per iteration, peak extra MiB) from a warm-up and two timed runs of different lengths."""
    import torch

    short = max(1, iters // 4)
    run(short)  # compile, autotune, allocate
    _sync(on_gpu)
    timings = []
    for n_iter in (short, iters):
        if on_gpu:
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        t0 = time.perf_counter()
        done = run(n_iter)
        _sync(on_gpu)
        timings.append((time.perf_counter() - t0, done))
    (t1, k1), (t2, k2) = timings
    per_iter = (t2 - t1) / (k2 - k1) if k2 > k1 and t2 > t1 else t2 / k2
    peak = (torch.cuda.max_memory_allocated() - base) / 2**20 if on_gpu else None
    return 1e3 * per_iter, peak


def time_all(report: Report, sizes, dims, iters, reg, device, on_gpu, geomloss_backend, only) -> None:
    import torch

    for d in dims:
        for n in sizes:
            x, y = make_points(n, d, device, seed=n + d)
            for method, precision, factory in competitors(x, y, reg, on_gpu, geomloss_backend):
                if only and not any(key.lower() in method.lower() for key in only):
                    continue
                row = Row(method, n, d, precision, floor_ms=floor_ms(n, n, d, precision))
                try:
                    row.ms_per_iter, row.peak_mib = measure(factory(), iters, on_gpu)
                    row.floor_fraction = row.floor_ms / row.ms_per_iter
                except ImportError as err:
                    row.note = f"skipped: {err}"
                except torch.cuda.OutOfMemoryError:
                    row.note = "out of memory"
                except Exception as err:  # a competitor failing must not end the run; say why
                    first_line = str(err).splitlines()[0][:120] if str(err) else ""
                    row.note = f"failed: {type(err).__name__}: {first_line}"
                if on_gpu:
                    torch.cuda.empty_cache()
                report.rows.append(row)
                print(_row_line(row), flush=True)


# --------------------------------------------------------------------------------------------- correctness
def check_accuracy(report: Report, n: int, dims, reg: float, device, n_iter: int) -> None:
    """ot-core Triton (fp32, TF32) vs the chunked torch backend in float64, same iterations from zero."""
    import ot_core as otc

    def solve(x, y, backend, precision="ieee"):
        xg = x.clone().requires_grad_(True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = otc.solve_sample(xg, y, reg=reg, backend=backend, precision=precision, max_iter=n_iter,
                                   tol=1e-30, check_every=n_iter)
        res.value.backward()
        return res.f.double(), xg.grad.double()

    for d in dims:
        x, y = make_points(n, d, device, seed=d)
        f64, g64 = solve(x.double(), y.double(), "chunked")
        for precision, tol in (("ieee", 1e-4), ("tf32", 1e-2)):
            f, grad = solve(x, y, "triton", precision)
            df = f - f64
            pot_err = float((df - df.mean()).abs().max() / f64.abs().max())
            grad_err = float((grad - g64).abs().max() / g64.abs().max())
            check = Check(f"ot-core triton {precision}", d, pot_err, grad_err, tol,
                          passed=pot_err <= tol and grad_err <= tol)
            report.checks.append(check)
            print(f"check d={d} {precision}: potentials {pot_err:.2e}, grad {grad_err:.2e} (tol {tol:g}) "
                  f"{'ok' if check.passed else 'FAILED'}", flush=True)


# --------------------------------------------------------------------------------------------- output
def _fmt(v, spec):
    return "–" if v is None else format(v, spec)


def _row_line(r: Row) -> str:
    return (f"| {r.n:,} | {r.d} | {r.method} | {r.precision} | {_fmt(r.ms_per_iter, '.3f')} | "
            f"{_fmt(r.peak_mib, '.0f')} | {_fmt(r.floor_ms, '.3f')} | {_fmt(r.floor_fraction, '.2f')} | "
            f"{r.note} |")


def markdown(report: Report) -> str:
    env = report.env
    lines = [
        f"Device: {env['device']}; torch {env['torch']}, triton {env['triton']}; {env['date']}.",
        f"Command: `{env['command']}`",
        "",
        "| check | d | potentials (rel.) | grad x (rel.) | tol | |",
        "|---|---|---|---|---|---|",
    ]
    lines += [f"| {c.method} | {c.d} | {c.potential_err:.2e} | {c.grad_err:.2e} | {c.tol:g} | "
              f"{'ok' if c.passed else 'FAILED'} |" for c in report.checks]
    lines += [
        "",
        "| n = m | d | method | precision | ms / iteration | peak MiB | floor ms | floor / time | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [_row_line(r) for r in report.rows]
    lines += ["", ("Floor (spec 5.5, H200): max(exp 2nm / 4.0e12 /s, dot 4nmd / rate), rate 67 TFLOP/s fp32, "
                   "395 TF32; floor / time = 1 is the physical limit.")]
    return "\n".join(lines) + "\n"


def plot(report: Report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dims = sorted({r.d for r in report.rows})
    fig, axes = plt.subplots(1, len(dims), figsize=(5 * len(dims), 4), squeeze=False)
    for ax, d in zip(axes[0], dims):
        rows = [r for r in report.rows if r.d == d and r.ms_per_iter is not None]
        for label in dict.fromkeys(f"{r.method} ({r.precision})" for r in rows):
            pts = sorted((r.n, r.ms_per_iter) for r in rows if f"{r.method} ({r.precision})" == label)
            ax.plot(*zip(*pts), marker="o", label=label)
        sizes = sorted({r.n for r in report.rows if r.d == d})
        for precision, style in (("fp32", "k--"), ("tf32", "k:")):
            ax.plot(sizes, [floor_ms(n, n, d, precision) for n in sizes], style, marker="_", markersize=14,
                    label=f"floor {precision} (H200)")
        ax.set(xscale="log", yscale="log", xlabel="n = m", ylabel="ms / iteration", title=f"d = {d}")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write(report: Report, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_gpu.json").write_text(json.dumps(asdict(report), indent=1))
    (out / "bench_gpu.md").write_text(markdown(report))
    plot(report, out / "bench_gpu.png")
    print(f"wrote {out}/bench_gpu.json, bench_gpu.md, bench_gpu.png")


# --------------------------------------------------------------------------------------------- main
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 100_000], help="n = m values")
    p.add_argument("--dims", type=int, nargs="+", default=[2, 16, 64], help="dimensions d")
    p.add_argument("--iters", type=int, default=40, help="iterations of the long timed run (short: 1/4)")
    p.add_argument("--reg", type=float, default=0.05, help="epsilon (cost |x - y|^2, points with |x|^2 ~ 1)")
    p.add_argument("--check-n", type=int, default=8192, help="n = m of the float64 correctness check")
    p.add_argument("--check-iters", type=int, default=50, help="Sinkhorn iterations of the correctness check")
    p.add_argument("--only", nargs="*", default=None, help="time only the methods whose names contain these")
    p.add_argument("--out", type=Path, default=Path("out/bench_gpu"), help="output folder")
    p.add_argument("--smoke", action="store_true",
                   help="tiny sizes on the CPU, Triton interpreter (tests the script, times nothing)")
    args = p.parse_args(argv)
    if args.smoke:
        args.sizes, args.dims, args.iters, args.check_n, args.check_iters = [32], [17], 4, 32, 5
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.smoke:
        os.environ.setdefault("TRITON_INTERPRET", "1")  # before ot_core's kernels are imported
    import torch

    on_gpu = torch.cuda.is_available() and not args.smoke
    if not on_gpu and not args.smoke:
        print("no CUDA device: run with --smoke on a CPU", file=sys.stderr)
        return 2
    device = torch.device("cuda" if on_gpu else "cpu")
    import triton

    env = {
        "device": (torch.cuda.get_device_name() if on_gpu
                   else f"CPU ({platform.processor() or platform.machine()}), Triton interpreter"),
        "torch": torch.__version__,
        "triton": triton.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
    }
    report = Report(env)
    check_accuracy(report, args.check_n, args.dims, args.reg, device, args.check_iters)
    geomloss_backend = _geomloss_backend(on_gpu)
    time_all(report, args.sizes, args.dims, args.iters, args.reg, device, on_gpu, geomloss_backend, args.only)
    write(report, args.out)
    return 0 if all(c.passed for c in report.checks) else 1


def _geomloss_backend(on_gpu: bool) -> str:
    """"online" when KeOps imports and compiles a tiny reduction on this GPU, else "tensorized"."""
    if not on_gpu:
        return "tensorized"
    try:
        import torch
        from geomloss import SamplesLoss

        x = torch.randn(64, 3, device="cuda")
        SamplesLoss("sinkhorn", p=2, blur=0.1, backend="online")(x, x)
        return "online"
    except Exception as err:  # pykeops missing or its compiler unavailable
        print(f"GeomLoss online (KeOps) unavailable ({type(err).__name__}); using tensorized", flush=True)
        return "tensorized"


if __name__ == "__main__":
    sys.exit(main())
