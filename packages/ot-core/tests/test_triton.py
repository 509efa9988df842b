"""The fused Triton backend against the torch passes (kernel level) and against backend="chunked" (solves).

Without CUDA these run under the Triton CPU interpreter: the root conftest.py sets TRITON_INTERPRET=1 before
collection. Tolerances are norm-wise, max|actual - ref| <= atol + rtol * max|ref| (per tensor): fp32 rounding
of the scores scales with their largest magnitude, not with each entry. Balanced potentials are compared after
removing their mean difference (they are defined up to a constant, which fp32 noise lets drift).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

pytest.importorskip("triton")

import ot_core as otc  # noqa: E402
from ot_core import ops  # noqa: E402
from ot_core.ops import triton_sqeuclid as ts  # noqa: E402

ON_GPU = torch.cuda.is_available() and not ts.INTERPRETED
DEVICE = "cuda" if ON_GPU else "cpu"
pytestmark = [
    pytest.mark.triton,
    pytest.mark.skipif(not (ON_GPU or ts.INTERPRETED), reason="needs CUDA or TRITON_INTERPRET=1 at import"),
]

RTOL = 1e-5 if ts.INTERPRETED else 1e-4  # spec 5.3: interpreter (exact exp2) vs GPU (ex2.approx) strict fp32
ATOL = 1e-6
GRAD_RTOL = 1e-4
SIZES = (1, 7, 33, 128, 300)
DIMS = (1, 2, 3, 8, 9, 16, 17, 31, 32, 33, 64)
INF = math.inf


def assert_close(actual, ref, rtol=RTOL, atol=ATOL, scale=None, center=False):
    """max|actual - ref| <= atol + rtol * scale, scale = max|ref| by default; ``center`` drops a constant."""
    diff = actual.double() - ref.double()
    if center:
        diff = diff - diff.mean(-1, keepdim=True)
    scale = ref.double().abs().max() if scale is None else scale
    err, bound = float(diff.abs().max()), atol + rtol * float(scale)
    assert not torch.isnan(actual).any()
    assert err <= bound, f"max error {err:.3g} > {bound:.3g}"


def make_points(B, n, m, d, seed, shift=0.2):
    """x (B, n, d), y (B, m, d) with |x|^2 ~ 1, fp32 on DEVICE."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(B, n, d, generator=gen) / math.sqrt(d)
    y = torch.randn(B, m, d, generator=gen) / math.sqrt(d) + shift
    return x.to(DEVICE), y.to(DEVICE), gen


def shifted_bias(y, gen, eps):
    """A Sinkhorn-like column bias g/eps + log b - |y|^2/eps (B, m) and coef = 2/eps (dot form)."""
    B, m, _ = y.shape
    g = 0.1 * torch.randn(B, m, generator=gen).to(y.device)
    return g / eps - math.log(m) - (y * y).sum(-1) / eps, 2.0 / eps


def check_kernels(B, n, m, d, seed, eps=0.5, k=3):
    x, y, gen = make_points(B, n, m, d, seed)
    bias, coef = shifted_bias(y, gen, eps)
    ref = ops.lse_dot(x.double(), y.double(), bias.double(), coef, rows=64)
    assert_close(ts.lse_dot(x, y, bias, coef), ref)

    row_bias = (0.1 * torch.randn(B, n, generator=gen) - (x.cpu() * x.cpu()).sum(-1) / eps).to(DEVICE)
    V = torch.randn(B, m, k, generator=gen).to(DEVICE)
    args64 = (x.double(), y.double(), row_bias.double(), bias.double(), coef)
    ref = ops.apply_dot(*args64, V.double(), rows=64)
    magnitude = ops.apply_dot(*args64, V.double().abs(), rows=64)  # |P| |V|: the scale of rounding errors
    assert_close(ts.apply_dot(x, y, row_bias, bias, coef, V), ref, scale=magnitude.max())


# --------------------------------------------------------------------------------------------- kernels
@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("i", range(len(SIZES)))
def test_kernels_match_torch_over_n_and_d(i, d):
    """Every n in SIZES and d in DIMS (register kernel d <= 8, tl.dot kernel above), with m cycling."""
    n, m = SIZES[i], SIZES[(i + 2 + d) % len(SIZES)]
    check_kernels(2, n, m, d, seed=100 * i + d)


@pytest.mark.parametrize("d", (2, 33))
@pytest.mark.parametrize("m", SIZES)
@pytest.mark.parametrize("n", SIZES)
def test_kernels_match_torch_over_n_and_m(n, m, d):
    if max(n, m) == 300 and min(n, m) > 33:
        pytest.skip("covered by the n x d grid; the interpreter is slow")
    check_kernels(1, n, m, d, seed=n * 1000 + m, k=1)


def test_apply_splits_wide_V_over_grid_axis_2():
    check_kernels(2, 33, 40, 17, seed=3, k=ts.MAX_BLOCK_V + 7)


def test_large_scores_stay_finite_and_accurate():
    """C/eps ~ 1e3: fp32 scores carry ~1e-7 * 1e3 absolute error, and nothing overflows."""
    x, y, gen = make_points(2, 128, 96, 3, seed=7, shift=1.0)
    bias, coef = shifted_bias(y, gen, eps=2e-3)
    out = ts.lse_dot(x, y, bias, coef)
    assert torch.isfinite(out).all()
    assert_close(out, ops.lse_dot(x.double(), y.double(), bias.double(), coef, rows=64))


def test_zero_weights_and_empty_rows_give_no_nan():
    """-inf biases (zero weights, padding): an all -inf row gives lse = -inf and P @ V = 0, never NaN."""
    x, y, gen = make_points(2, 70, 150, 17, seed=11)
    bias, coef = shifted_bias(y, gen, eps=0.5)
    bias[0, 5:140] = -INF  # most columns of item 0 (whole tiles among them) have weight zero
    bias[1] = -INF  # item 1: every column
    lse = ts.lse_dot(x, y, bias, coef)
    ref = ops.lse_dot(x.double(), y.double(), bias.double(), coef, rows=64)
    assert_close(lse[0], ref[0])
    assert torch.isneginf(lse[1]).all()

    row_bias = torch.zeros(2, 70, device=DEVICE)
    row_bias[0, :20] = -INF
    V = torch.ones(2, 150, 2, device=DEVICE)
    out = ts.apply_dot(x, y, row_bias, bias, coef, V)
    ref = ops.apply_dot(x.double(), y.double(), row_bias.double(), bias.double(), coef, V.double(), rows=64)
    assert not torch.isnan(out).any()
    assert (out[0, :20] == 0).all() and (out[1] == 0).all()
    assert_close(out, ref)


def test_tl_dot_path_pads_d_so_the_k_loop_runs_twice():
    """Spec 2.4-6: d <= 8 uses the register kernel; above, d is padded to a multiple of 16 and >= 32."""
    for d in DIMS:
        x = torch.zeros(1, 2, d)
        xs, ys, D, use_dot = ts._points(x, x)
        assert use_dot == (d > 8)
        if use_dot:
            assert D % 16 == 0 and D >= max(32, d) and D // 16 >= 2 and xs.shape[-1] == ys.shape[-1] == D
            assert (xs[..., d:] == 0).all()
        else:
            assert D == d


@pytest.mark.parametrize(
    "D, use_dot, block_k", [(32, True, 16), (48, True, 16), (64, True, 32), (3, False, 16)]
)
def test_autotune_pruning_keeps_the_k_loop_at_two_steps_or_more(D, use_dot, block_k):
    """Called as Triton's autotuner does: positional arguments in a dict, constexpr keywords as kwargs."""
    paths = ((ts._prune, ts.REGISTER_LSE_TILES), (ts._prune_apply, ts.REGISTER_APPLY_TILES))
    for prune, register_tiles in paths:
        kept = prune(ts.gpu_configs(), {"n": 100}, D=D, USE_DOT=use_dot)
        assert {c.kwargs["BLOCK_K"] for c in kept} == {block_k} and (D // block_k >= 2 or not use_dot)
        assert {ts._tile(c) for c in kept} == set(ts.DOT_TILES if use_dot else register_tiles)
    assert all(bm == 32 * warps for bm, _, warps, _ in ts.REGISTER_LSE_TILES)  # one thread per row


def test_precision_is_validated():
    x, y, gen = make_points(1, 7, 7, 17, seed=1)
    bias, coef = shifted_bias(y, gen, eps=0.5)
    with pytest.raises(ValueError, match="precision"):
        ts.lse_dot(x, y, bias, coef, precision="bf16")
    with pytest.raises(ValueError, match="precision"):
        otc.solve_sample(x[0], y[0], reg=0.5, backend="triton", precision="fp16")


@pytest.mark.skipif(not ON_GPU, reason="TF32 rounding is GPU-only (the interpreter ignores input_precision)")
@pytest.mark.parametrize("precision, rtol", [("tf32x3", 1e-4), ("tf32", 1e-2)])
def test_tf32_modes_on_gpu(precision, rtol):
    x, y, gen = make_points(2, 300, 257, 64, seed=5)
    bias, coef = shifted_bias(y, gen, eps=0.5)
    ref = ops.lse_dot(x.double(), y.double(), bias.double(), coef, rows=64)
    assert_close(ts.lse_dot(x, y, bias, coef, precision=precision), ref, rtol=rtol)


@pytest.mark.skipif(not ON_GPU, reason="host synchronisation is a CUDA notion")
def test_passes_do_not_synchronise_the_host():
    x, y, gen = make_points(2, 1000, 900, 16, seed=2)
    bias, coef = shifted_bias(y, gen, eps=0.5)
    V = torch.ones(2, 900, 3, device=DEVICE)
    ts.lse_dot(x, y, bias, coef), ts.apply_dot(x, y, bias[:, :1].expand(2, 1000), bias, coef, V)  # autotune
    torch.cuda.set_sync_debug_mode("error")
    try:
        ts.lse_dot(x, y, bias, coef)
        ts.apply_dot(x, y, bias[:, :1].expand(2, 1000), bias, coef, V)
    finally:
        torch.cuda.set_sync_debug_mode("default")


# --------------------------------------------------------------------------------------------- solves
def solve_both(x, y, grads=False, **kw):
    """Triton and chunked results of the same fp32 problem (and x, y gradients of the value if asked)."""
    out = {}
    for backend in ("triton", "chunked"):
        xb, yb = x.clone().requires_grad_(grads), y.clone().requires_grad_(grads)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # short fixed max_iter: not converged on purpose
            res = otc.solve_sample(xb, yb, backend=backend, **kw)
        if grads:
            res.value.sum().backward()
        out[backend] = (res, xb.grad, yb.grad)
    assert out["triton"][0].backend == "triton"
    return out["triton"], out["chunked"]


def check_potentials(tri, chk, center):
    assert_close(tri.f, chk.f, center=center)
    assert_close(tri.g, chk.g, center=center)


@pytest.mark.parametrize(
    "n, m, d", [(1, 33, 2), (7, 1, 17), (33, 64, 3), (64, 48, 16), (48, 64, 64), (300, 7, 2)]
)
def test_balanced_matches_chunked(n, m, d):
    x, y, _ = make_points(1, n, m, d, seed=n + m + d)
    (tri, *_), (chk, *_) = solve_both(x[0], y[0], reg=0.05, max_iter=20)
    check_potentials(tri, chk, center=True)
    for r_tri, r_chk in zip(tri.marginals, chk.marginals):  # P 1 and P^T 1 through the plan-apply kernel
        assert_close(r_tri, r_chk, rtol=GRAD_RTOL)


@pytest.mark.parametrize(
    "n, m, d, rho", [(33, 64, 2, (1.0, INF)), (64, 33, 17, (INF, 0.5)), (40, 50, 64, (1.0, 2.0))]
)
def test_unbalanced_and_semirelaxed_match_chunked(n, m, d, rho):
    x, y, _ = make_points(1, n, m, d, seed=n * m + d)
    (tri, *_), (chk, *_) = solve_both(x[0], y[0], reg=0.05, unbalanced=rho, max_iter=20)
    check_potentials(tri, chk, center=False)
    if math.isinf(rho[1]):  # the hard side is exact
        assert_close(tri.marginals[1], torch.full((m,), 1.0 / m, device=DEVICE), rtol=1e-4)


@pytest.mark.parametrize("n, m, d", [(33, 64, 3), (64, 40, 33)])
def test_partial_matches_chunked(n, m, d):
    x, y, _ = make_points(1, n, m, d, seed=n + 2 * m + d)
    (tri, *_), (chk, *_) = solve_both(x[0], y[0], reg=0.05, mass=0.6, max_iter=20)
    check_potentials(tri, chk, center=False)
    assert abs(float(tri.lazy_plan.row_sums().sum()) - 0.6) < 1e-5


def test_batched_ragged_lengths_match_chunked():
    x, y, _ = make_points(3, 40, 40, 17, seed=21)
    lengths = ([40, 25, 7], [33, 40, 12])
    (tri, *_), (chk, *_) = solve_both(x, y, reg=0.05, lengths=lengths, max_iter=20)
    for b, (la, lb) in enumerate(zip(*lengths)):
        assert_close(tri.f[b, :la], chk.f[b, :la], center=True)
        assert_close(tri.g[b, :lb], chk.g[b, :lb], center=True)
    assert_close(tri.value, chk.value)


def test_batched_zero_weights_match_chunked():
    x, y, gen = make_points(2, 30, 45, 3, seed=8)
    a = torch.rand(2, 30, generator=gen)
    b = torch.rand(2, 45, generator=gen)
    a[0, :10], b[1, 5:30] = 0, 0
    a, b = (a / a.sum(-1, keepdim=True)).to(DEVICE), (b / b.sum(-1, keepdim=True)).to(DEVICE)
    (tri, *_), (chk, *_) = solve_both(x, y, a=a, b=b, reg=0.05, max_iter=20)
    assert_close(tri.value, chk.value)
    plan_t, plan_c = tri.plan, chk.plan
    assert_close(plan_t, plan_c, rtol=GRAD_RTOL)
    assert (plan_t[0, :10] == 0).all() and (plan_t[1, :, 5:30] == 0).all()


def test_symmetric_updates_of_the_divergence_match_chunked():
    x, y, _ = make_points(1, 48, 40, 2, seed=4)
    (tri, *_), (chk, *_) = solve_both(x[0], y[0], reg=0.05, updates="symmetric", max_iter=20)
    check_potentials(tri, chk, center=True)
    # self-transport, as in the debiasing terms
    (tri, *_), (chk, *_) = solve_both(x[0], x[0], reg=0.05, updates="symmetric", max_iter=20)
    check_potentials(tri, chk, center=True)


@pytest.mark.parametrize("kw", [{}, {"unbalanced": (1.0, INF)}], ids=["balanced", "semi-relaxed"])
@pytest.mark.parametrize("d", (2, 17))
def test_envelope_gradients_in_x_and_y_match_chunked(d, kw):
    x, y, _ = make_points(1, 40, 33, d, seed=d)
    (tri, gx_t, gy_t), (chk, gx_c, gy_c) = solve_both(x[0], y[0], grads=True, reg=0.05, max_iter=20, **kw)
    assert_close(gx_t, gx_c, rtol=GRAD_RTOL)
    assert_close(gy_t, gy_c, rtol=GRAD_RTOL)
    bary = tri.lazy_plan.barycentric_map()
    assert_close(bary, chk.lazy_plan.barycentric_map(), rtol=GRAD_RTOL)


@pytest.mark.filterwarnings("ignore:OT solver stopped")
def test_allow_tf32_selects_the_triton_tf32_path():
    x, y, _ = make_points(1, 20, 20, 17, seed=9)
    res = otc.solve_sample(x[0], y[0], reg=0.1, backend="triton", allow_tf32=True, max_iter=10)
    assert res.backend == "triton" and res.lazy_plan.geom.precision == "tf32"


# --------------------------------------------------------------------------------------------- dispatch
@pytest.mark.skipif(ON_GPU, reason="CPU dispatch")
def test_auto_uses_the_torch_backends_on_cpu():
    x, y, _ = make_points(1, 20, 20, 2, seed=0)
    assert otc.solve_sample(x[0], y[0], reg=0.1).backend in ("dense", "chunked")


def test_kernels_compile_for_an_h200_without_a_gpu():
    """The interpreter never runs the GPU compiler: compile the LSE kernel (register path, and tl.dot at
    d = 64 in every precision; first autotune config) for sm_90 with Triton's bundled ptxas."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "compile_kernels.py"
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_DEFAULT_FP_FUSION"] = "1"
    args = [sys.executable, str(script), "--quick", "--kernels", "lse", "--dims", "2", "64"]
    proc = subprocess.run(args, env=env, capture_output=True, text=True, check=False, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("BLOCK_M/N/K") == 4 and "all configs compiled" in proc.stdout


CPU_WITHOUT_INTERPRETER = """
import sys, torch
sys.modules["triton"] = None  # as if triton were not installed
import ot_core
x, y = torch.randn(5, 2), torch.randn(4, 2)
assert "ot_core.ops.triton_sqeuclid" not in sys.modules
ot_core.solve_sample(x, y, reg=1.0, backend="chunked")
for attempt in ("without triton", "without the interpreter"):
    try:
        ot_core.solve_sample(x, y, reg=1.0, backend="triton")
    except RuntimeError as err:
        print(attempt, "->", err)
    del sys.modules["triton"]  # triton importable again for the second attempt
"""


def test_ot_core_imports_without_triton_and_explains_what_triton_needs():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["CUDA_VISIBLE_DEVICES"] = ""
    args = [sys.executable, "-c", CPU_WITHOUT_INTERPRETER]
    proc = subprocess.run(args, env=env, capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    no_triton, no_interpreter = proc.stdout.splitlines()
    assert no_triton.startswith("without triton ->") and "ot-core[triton]" in no_triton
    assert no_interpreter.startswith("without the interpreter ->")
    assert "TRITON_INTERPRET=1" in no_interpreter and "backend='chunked'" in no_interpreter
