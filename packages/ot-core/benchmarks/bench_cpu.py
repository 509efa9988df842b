"""CPU benchmark of ot-core's Sinkhorn against POT and GeomLoss on the same problems, in one run.

For each n = m and d: x ~ N(0, I_d), y ~ N(0.5, I_d), squared-Euclidean cost, eps = 0.05 * mean(C).

* Time to the same marginal error: every solver runs the same alternating log-domain iteration from zero
  potentials for exactly ``--iters`` iterations (POT with stopThr = 0, ot-core with tol = 0), so all reach the
  same iterate; the table reports seconds per iteration, the ratio to ot-core, and each solver's final L1 marginal
  error (computed afterwards by one shared routine) as the check that they did the same work.
  - POT ``ot.sinkhorn(method="sinkhorn_log")`` on numpy float64 vs ot-core float64;
  - POT ``ot.sinkhorn(method="sinkhorn_log")`` on torch float32 vs ot-core float32.
* GeomLoss ``SamplesLoss("sinkhorn", backend="tensorized", debias=False)`` per iteration at the same eps
  (its fixed epsilon schedule divided by its iteration count) vs ot-core's symmetric updates.
* Peak memory of ``solve_sample`` (chunked, float32) at n = m = 50,000, d = 16, in a fresh process.

Run:  uv run python packages/ot-core/benchmarks/bench_cpu.py --out bench-cpu   (about 30-60 min on 2 cores)
      uv run python packages/ot-core/benchmarks/bench_cpu.py --sizes 1000 --dims 2 --iters 10   (a minute)
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

import ot_core as otc


def problem(n: int, d: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, dtype=torch.float64, generator=g)
    y = torch.randn(n, d, dtype=torch.float64, generator=g) + 0.5
    return x, y


def marginal_error(P: torch.Tensor) -> float:
    n, m = P.shape
    return float((P.sum(1) - 1 / n).abs().sum() + (P.sum(0) - 1 / m).abs().sum())


def lazy_marginal_error(res) -> float:
    r, c = res.marginals
    return float((r - 1 / r.numel()).abs().sum() + (c - 1 / c.numel()).abs().sum())


def timed(fn, repeat: int = 1):
    best, out = math.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def bench_pot(x, y, eps, iters, dtype):
    import ot

    a = np.full(len(x), 1 / len(x))
    if dtype == "numpy64":
        M = ot.dist(x.numpy(), y.numpy())
        sec, P = timed(lambda: ot.sinkhorn(a, a, M, eps, method="sinkhorn_log", numItermax=iters, stopThr=0.0))
        return sec / iters, marginal_error(torch.from_numpy(P))
    xt, yt = x.float(), y.float()
    M = ot.dist(xt, yt)
    at = torch.from_numpy(a).float()
    sec, P = timed(lambda: ot.sinkhorn(at, at, M, eps, method="sinkhorn_log", numItermax=iters, stopThr=0.0))
    return sec / iters, marginal_error(P.double())


def bench_ours(x, y, eps, iters, dtype, backend="auto"):
    # POT updates the column potential first: solving (y, x) makes ot-core visit exactly POT's iterates
    xs, ys = y.to(dtype), x.to(dtype)

    def run():
        return otc.solve_sample(xs, ys, reg=eps, backend=backend, max_iter=iters, tol=1e-300, check_every=iters,
                                grad="detach")

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run()  # warm-up: allocator, thread pool
        sec, res = timed(run)
    return sec / iters, lazy_marginal_error(res), res.backend


def bench_geomloss(x, y, eps, scaling=0.9):
    try:
        import geomloss
    except ImportError:
        return None
    xs, ys = x.float(), y.float()
    blur = math.sqrt(eps)
    loss = geomloss.SamplesLoss("sinkhorn", p=2, blur=blur, scaling=scaling, debias=False, backend="tensorized")
    n_iter = geomloss_iterations(xs, ys, blur, scaling)
    loss(xs, ys)
    sec, _ = timed(lambda: loss(xs, ys))
    return sec / n_iter, n_iter


def bench_ours_symmetric(x, y, eps, scaling=0.9):
    xs, ys = x.float(), y.float()

    def run():
        return otc.solve_sample(xs, ys, reg=eps, half=True, updates="symmetric", eps_schedule="geomloss",
                                scaling=scaling, max_iter=1, grad="detach")

    run()
    sec, res = timed(run)
    return sec / geomloss_iterations(xs, ys, math.sqrt(eps), scaling)


def geomloss_iterations(x, y, blur, scaling) -> int:
    """Symmetric iterations of GeomLoss's schedule: one per epsilon, plus the initial and final half-steps."""
    try:
        from geomloss.sinkhorn_divergence import epsilon_schedule, max_diameter
    except ImportError:  # geomloss >= 0.3.1 keeps them in _legacy
        from geomloss._legacy.sinkhorn_divergence import epsilon_schedule, max_diameter
    return len(epsilon_schedule(2, max_diameter(x, y), blur, scaling)) + 1


MEMORY_PROBE = """
import resource, sys, time, torch, ot_core
n, d = int(sys.argv[1]), int(sys.argv[2])
g = torch.Generator().manual_seed(0)
x, y = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g) + 0.5
ot_core.solve_sample(x[:100], y[:100], reg=1.0, max_iter=2)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
res = ot_core.solve_sample(x, y, reg=1.0, backend="chunked", max_iter=2, tol=1e-300, check_every=2, grad="detach")
r = res.lazy_plan.row_sums()
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, base * 1024, time.perf_counter() - t0)
"""


def bench_memory(n: int, d: int) -> dict:
    out = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(n), str(d)], capture_output=True, text=True,
                         check=True)
    peak, base, sec = out.stdout.split()
    return {"n": n, "d": d, "peak_rss_bytes": int(peak), "baseline_rss_bytes": int(base),
            "extra_bytes": int(peak) - int(base), "dense_fp32_bytes": n * n * 4, "seconds_2_iters_and_row_sums":
            float(sec)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000, 10000])
    p.add_argument("--dims", type=int, nargs="+", default=[2, 16, 64])
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--memory-n", type=int, default=50_000, help="0 skips the memory probe")
    p.add_argument("--out", type=Path, default=Path("bench-cpu"))
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    env = {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
           "machine": platform.machine(), "processor": platform.processor(), "date": time.strftime("%Y-%m-%d")}
    rows = []
    for n in args.sizes:
        for d in args.dims:
            x, y = problem(n, d)
            eps = 0.05 * float((torch.cdist(x[:2000], y[:2000]) ** 2).mean())
            row = {"n": n, "d": d, "eps": eps}
            row["pot_np64_s"], row["pot_np64_err"] = bench_pot(x, y, eps, args.iters, "numpy64")
            row["ours64_s"], row["ours64_err"], row["ours64_backend"] = bench_ours(x, y, eps, args.iters, torch.float64)
            row["pot_t32_s"], row["pot_t32_err"] = bench_pot(x, y, eps, args.iters, "torch32")
            row["ours32_s"], row["ours32_err"], row["ours32_backend"] = bench_ours(x, y, eps, args.iters, torch.float32)
            gl = bench_geomloss(x, y, eps)
            if gl is not None:
                row["geomloss_s"], row["geomloss_iters"] = gl
                row["ours_sym32_s"] = bench_ours_symmetric(x, y, eps)
            rows.append(row)
            print(json.dumps(row), flush=True)
            (args.out / "results.json").write_text(json.dumps({"env": env, "rows": rows}, indent=2))
    memory = bench_memory(args.memory_n, 16) if args.memory_n else None
    (args.out / "results.json").write_text(json.dumps({"env": env, "rows": rows, "memory": memory}, indent=2))
    table = markdown(rows, memory, args.iters)
    (args.out / "table.md").write_text(table)
    print(table)


def markdown(rows, memory, iters) -> str:
    lines = [
        f"| n = m | d | POT np64 ms/it | ot-core f64 ms/it | speed-up | POT torch32 ms/it | ot-core f32 ms/it | speed-up |"
        f" GeomLoss ms/it | ot-core sym f32 ms/it | speed-up | marginal error (POT / ours, f64, after {iters} it) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        gl = (f"{1e3 * r['geomloss_s']:.1f} | {1e3 * r['ours_sym32_s']:.1f} | {r['geomloss_s'] / r['ours_sym32_s']:.1f}x"
              if "geomloss_s" in r else "- | - | -")
        lines.append(
            f"| {r['n']} | {r['d']} | {1e3 * r['pot_np64_s']:.1f} | {1e3 * r['ours64_s']:.1f} ({r['ours64_backend']}) | "
            f"{r['pot_np64_s'] / r['ours64_s']:.1f}x | {1e3 * r['pot_t32_s']:.1f} | {1e3 * r['ours32_s']:.1f} "
            f"({r['ours32_backend']}) | {r['pot_t32_s'] / r['ours32_s']:.1f}x | {gl} | "
            f"{r['pot_np64_err']:.2e} / {r['ours64_err']:.2e} |")
    if memory:
        lines.append("")
        lines.append(f"solve_sample (chunked, float32) at n = m = {memory['n']:,}, d = {memory['d']}: peak RSS "
                     f"{memory['peak_rss_bytes'] / 2**30:.2f} GiB ({memory['extra_bytes'] / 2**20:.0f} MiB above the "
                     f"process baseline); a dense float32 cost matrix alone would take "
                     f"{memory['dense_fp32_bytes'] / 2**30:.1f} GiB; 2 iterations + row sums took "
                     f"{memory['seconds_2_iters_and_row_sums']:.0f} s.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
