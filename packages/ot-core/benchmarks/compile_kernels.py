"""Compile ot-core's Triton kernels for an NVIDIA GPU target without a GPU, and report registers and spills.

The CPU interpreter runs the kernels' arithmetic but not the GPU compiler, so a kernel can pass every CPU test
and still fail to compile, or spill registers, on the device. This script compiles each autotuning config
(after pruning) for the given compute capability with Triton's bundled ptxas, specialising the arguments as
the JIT does at n = m = 100k (unit strides constant, pointers and sizes 16-aligned), and prints a table.
Exit status 1 if any config fails to compile.

    env -u TRITON_INTERPRET uv run python packages/ot-core/benchmarks/compile_kernels.py [--arch 90] [--quick]
        [--kernels lse apply] [--dims 2 64]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

# (D, USE_DOT, PRECISION): register kernel, tl.dot kernel at padded d = 32 and 64 in each precision
CASES = [(2, False, "ieee"), (8, False, "ieee"), (32, True, "ieee"), (32, True, "tf32"), (64, True, "ieee"),
         (64, True, "tf32"), (64, True, "tf32x3")]
APPLY_BLOCK_V = (16, 32)  # k = 1 (marginals) and k = d + 1 (gradients; wider V is split over grid axis 2)


def unit_strides(kernel_name: str, use_dot: bool) -> set[str]:
    """Stride arguments equal to 1 for the host layouts of triton_sqeuclid (the JIT makes them constants)."""
    # row-major points (tl.dot path) or coordinate-major points (register path)
    points = {"sxk", "syk"} if use_dot else {"sxn", "syn"}
    vectors = {"sbn", "son"} if kernel_name == "_lse_kernel" else {"srn", "scn", "svk", "sok"}
    return points | vectors


def compile_config(kernel, cfg, constexprs: dict, unit: set[str], arch: int):
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    fn = kernel.fn
    consts = {**constexprs, **cfg.kwargs, **{name: 1 for name in unit}}
    signature, attrs = {}, {}
    for i, param in enumerate(fn.params):
        name = param.name
        if param.is_constexpr or name in consts:
            signature[name] = "constexpr"
        elif name.isupper():  # pointers: X, Y, BIAS, OUT, ROW_BIAS, COL_BIAS, V
            signature[name] = "*fp32"
            attrs[(i,)] = [["tt.divisibility", 16]]
        elif name == "coef2":
            signature[name] = "fp32"
        else:
            signature[name] = "i32"
            attrs[(i,)] = [["tt.divisibility", 16]]
    constexprs = {k: v for k, v in consts.items() if k in fn.arg_names}
    src = ASTSource(fn, signature, constexprs=constexprs, attrs=attrs)
    return triton.compile(src, target=GPUTarget("cuda", arch, 32),
                          options={"num_warps": cfg.num_warps, "num_stages": cfg.num_stages})


def resource_usage(cubin: bytes) -> str:
    """'regs=R stack=S' from the cubin, via the cuobjdump bundled with Triton (empty if absent)."""
    import triton

    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
    if not os.path.exists(tool):
        return ""
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        out = subprocess.run([tool, "--dump-resource-usage", f.name], capture_output=True, text=True,
                             check=False).stdout
    match = re.search(r"REG:(\d+).*?STACK:(\d+)", out)
    return f"regs={match.group(1)} stack={match.group(2)}" if match else ""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", type=int, default=90, help="compute capability x 10 (90: H100/H200)")
    parser.add_argument("--quick", action="store_true", help="only the first pruned config of each case")
    parser.add_argument("--kernels", nargs="+", choices=("lse", "apply"), default=["lse", "apply"])
    parser.add_argument("--dims", type=int, nargs="+", default=None, help="only these (padded) D of CASES")
    args = parser.parse_args(argv)
    if os.environ.get("TRITON_INTERPRET") == "1":
        print("unset TRITON_INTERPRET: the interpreter replaces the kernels to compile", file=sys.stderr)
        return 2
    from ot_core.ops import triton_sqeuclid as ts

    failures = 0
    kernels = {"lse": (ts._lse_kernel, ts._prune), "apply": (ts._apply_kernel, ts._prune_apply)}
    for kernel, prune in (kernels[k] for k in args.kernels):
        name = kernel.fn.__name__
        for D, use_dot, precision in CASES:
            if args.dims and D not in args.dims:
                continue
            constexprs = {"D": D, "USE_DOT": use_dot, "PRECISION": precision}
            configs = prune(ts.gpu_configs(), {}, **constexprs)
            for block_v in APPLY_BLOCK_V if name == "_apply_kernel" else (None,):
                extra = {} if block_v is None else {"BLOCK_V": block_v}
                for cfg in configs[:1] if args.quick else configs:
                    label = (f"{name} D={D} {precision:6} {extra or ''} BLOCK_M/N/K={cfg.kwargs['BLOCK_M']}/"
                             f"{cfg.kwargs['BLOCK_N']}/{cfg.kwargs['BLOCK_K']} warps={cfg.num_warps} "
                             f"stages={cfg.num_stages}")
                    try:
                        compiled = compile_config(kernel, cfg, {**constexprs, **extra},
                                                  unit_strides(name, use_dot), args.arch)
                    except Exception as err:  # report every failing config, not only the first
                        failures += 1
                        print(f"{label}: FAILED {type(err).__name__}: {str(err)[:300]}", flush=True)
                        continue
                    print(f"{label}: {resource_usage(compiled.asm['cubin'])} "
                          f"shared={compiled.metadata.shared}", flush=True)
    print(f"{failures} failed" if failures else "all configs compiled")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
