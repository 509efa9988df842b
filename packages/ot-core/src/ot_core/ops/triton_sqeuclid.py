"""Fused Triton kernels for the squared-Euclidean softmin and plan-application passes ("dot form").

Both passes stream over column tiles of the implicit n x m score matrix and never store it (memory
O((n + m) d)). With shifted potentials (spec 2.4-1) a score is ``coef * x_i.y_j + bias_j``:

* :func:`lse_dot`:   out_i = LSE_j(coef x_i.y_j + bias_j)                                 (B, n)
* :func:`apply_dot`: out_i = sum_j exp(coef x_i.y_j + col_bias_j + row_bias_i) V_j         (B, n, k)

Inside, everything runs in base 2 (``exp2``; the host multiplies coef and the biases by log2 e) with an online
max and a rescaled running sum, accumulated in fp32 whatever the input dtype. Rows are tiled on grid axis 0,
the batch is grid axis 1 (axis 2 splits the columns of V). Scores x_i.y_j come from

* a register kernel for d <= 8: sum_k x_ik y_jk in a static loop of fp32 FMAs (no tensor cores, no padding)
  on coordinate-major points; the softmin tile is built transposed so that each thread owns whole rows and
  the online max and sum need no warp shuffles;
* a ``tl.dot`` kernel for d > 8: d is zero-padded on the host to a multiple of 16 and at least 32 so that the
  K loop always runs at least twice (spec 2.4-6: Triton miscompiles a single K step), ``precision`` picks
  strict fp32 ("ieee", default), 3-pass TF32 ("tf32x3") or TF32 ("tf32").

Masked rows/columns and zero weights (bias -inf) contribute nothing; an all -inf row gives -inf, never NaN.
On a GPU the tile shapes are autotuned per (padded d, precision, next_pow2(n), next_pow2(m)) (the first call
of each key synchronises once to benchmark); under ``TRITON_INTERPRET=1`` (CPU tests) one fixed config runs.
``TRITON_INTERPRET`` is read when this module is imported (Triton decides at decoration time).
"""

from __future__ import annotations

import math
import os

import torch
import triton
import triton.language as tl

__all__ = ["INTERPRETED", "PRECISIONS", "apply_dot", "lse_dot"]

PRECISIONS = ("ieee", "tf32", "tf32x3")
#: True when the kernels were defined under TRITON_INTERPRET=1 and so run on CPU tensors.
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"

LOG2E = 1.0 / math.log(2.0)
#: largest d handled by the register kernel; above it the tl.dot kernel runs on host-padded coordinates.
REGISTER_MAX_D = 8
#: columns of V handled by one program of the plan-application kernel (more go to grid axis 2, each
#: recomputing the scores); 64 or more make the fp32 P @ V accumulator spill registers.
MAX_BLOCK_V = 32


# ----------------------------------------------------------------------------------------- autotuning
# (BLOCK_M, BLOCK_N, num_warps, num_stages) candidates per kernel path (spec 2.4-8), chosen from the register
# and spill counts of compile_kernels.py for sm_90 (each candidate costs a compilation at the first call):
#: tl.dot scores (d > 8), LSE and plan application
DOT_TILES = ((64, 64, 4, 2), (64, 64, 4, 3), (64, 128, 4, 3), (128, 64, 4, 3), (128, 64, 8, 3),
             (128, 128, 8, 2), (128, 32, 4, 3), (32, 64, 4, 2))
#: register LSE (d <= 8): BLOCK_M = 32 x num_warps, so each thread owns whole rows of the transposed tile
REGISTER_LSE_TILES = ((128, 32, 4, 3), (128, 64, 4, 3), (128, 128, 4, 3), (256, 32, 8, 2), (256, 64, 8, 3))
#: register plan application (d <= 8): its tl.dot(p, V) in the FMA layout spills above 2048 scores per tile
REGISTER_APPLY_TILES = ((32, 32, 4, 2), (64, 32, 4, 2), (32, 64, 4, 2))


def gpu_configs() -> list[triton.Config]:
    """Every candidate config of every path, BLOCK_K in {16, 32}; :func:`_prune` picks a path's share."""
    tiles = dict.fromkeys(DOT_TILES + REGISTER_LSE_TILES + REGISTER_APPLY_TILES)
    return [
        triton.Config({"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk}, num_warps=w, num_stages=s)
        for bm, bn, w, s in tiles
        for bk in (16, 32)
    ]


def _configs() -> list[triton.Config]:
    if INTERPRETED:  # one fixed config: the interpreter would otherwise run every config
        return [triton.Config({"BLOCK_M": 64, "BLOCK_N": 128, "BLOCK_K": 16})]
    return gpu_configs()


def _tile(config: triton.Config) -> tuple[int, int, int, int]:
    return config.kwargs["BLOCK_M"], config.kwargs["BLOCK_N"], config.num_warps, config.num_stages


def _select(configs, named_args, kwargs, register_tiles):
    """tl.dot path: DOT_TILES with BLOCK_K = 16, or 32 when the padded d >= 64, so that the K loop runs at
    least twice (spec 2.4-6). Register path: ``register_tiles`` (BLOCK_K unused, kept at 16). Triton passes
    positional arguments in ``named_args`` and keyword arguments (here D and USE_DOT) in ``kwargs``."""
    args = {**named_args, **kwargs}
    if args["USE_DOT"]:
        block_k = 32 if args["D"] >= 64 else 16
        keep = [c for c in configs if _tile(c) in DOT_TILES and c.kwargs["BLOCK_K"] == block_k]
    else:
        keep = [c for c in configs if _tile(c) in register_tiles and c.kwargs["BLOCK_K"] == 16]
    return keep or configs[:1]


def _prune(configs, named_args, **kwargs):
    return _select(configs, named_args, kwargs, REGISTER_LSE_TILES)


def _prune_apply(configs, named_args, **kwargs):
    return _select(configs, named_args, kwargs, REGISTER_APPLY_TILES)


_KEY = ["D", "USE_DOT", "PRECISION", "n_bucket", "m_bucket"]


# ----------------------------------------------------------------------------------------- kernels
@triton.jit
def _tile_dots(x_base, y_base, offs_m, offs_n, mask_m, mask_n, sxn, sxk, syn, syk,
               D: tl.constexpr, USE_DOT: tl.constexpr, PRECISION: tl.constexpr,
               BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """x_i.y_j for one (BLOCK_M, BLOCK_N) tile, fp32: tl.dot over BLOCK_K slices, or FMAs for small d."""
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    if USE_DOT:
        for k0 in range(0, D, BLOCK_K):  # D is padded to a multiple of BLOCK_K, >= 2 * BLOCK_K
            offs_k = k0 + tl.arange(0, BLOCK_K)
            x_ptrs = x_base + offs_m[:, None] * sxn + offs_k[None, :] * sxk
            y_ptrs = y_base + offs_n[None, :] * syn + offs_k[:, None] * syk
            xt = tl.load(x_ptrs, mask=mask_m[:, None], other=0.0)
            yt = tl.load(y_ptrs, mask=mask_n[None, :], other=0.0)
            acc = tl.dot(xt, yt, acc, input_precision=PRECISION)
    else:
        for k in tl.static_range(D):
            xk = tl.load(x_base + offs_m * sxn + k * sxk, mask=mask_m, other=0.0)
            yk = tl.load(y_base + offs_n * syn + k * syk, mask=mask_n, other=0.0)
            acc += xk[:, None] * yk[None, :]
    return acc


@triton.jit
def _register_dots_t(x_base, y_base, offs_m, offs_n, mask_m, mask_n, sxn, sxk, syn, syk,
                     D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    """x_i.y_j for one tile stored transposed, (BLOCK_N, BLOCK_M), fp32 FMAs: Triton lays the threads along
    the last axis, so each thread owns whole columns i and reductions over j stay inside the thread."""
    acc = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
    for k in tl.static_range(D):
        xk = tl.load(x_base + offs_m * sxn + k * sxk, mask=mask_m, other=0.0)
        yk = tl.load(y_base + offs_n * syn + k * syk, mask=mask_n, other=0.0)
        acc += yk[:, None] * xk[None, :]
    return acc


@triton.jit
def _safe_max(run_max, z, AXIS: tl.constexpr):
    """New running max over AXIS of z and a finite copy of it (0 where only -inf has been seen)."""
    new_max = tl.maximum(run_max, tl.max(z, axis=AXIS))
    return new_max, tl.where(new_max == float("-inf"), 0.0, new_max)


@triton.jit
def _online_lse(run_max, run_sum, z, AXIS: tl.constexpr):
    """Fold one tile of base-2 scores z into the running max and rescaled sum along AXIS."""
    new_max, shift = _safe_max(run_max, z, AXIS)
    p = tl.exp2(z - tl.expand_dims(shift, AXIS))
    return new_max, run_sum * tl.exp2(run_max - shift) + tl.sum(p, axis=AXIS)


@triton.autotune(configs=_configs(), key=_KEY, prune_configs_by={"early_config_prune": _prune})
@triton.jit
def _lse_kernel(X, Y, BIAS, OUT, n, m, coef2,
                sxb, sxn, sxk, syb, syn, syk, sbb, sbn, sob, son, n_bucket, m_bucket,
                D: tl.constexpr, USE_DOT: tl.constexpr, PRECISION: tl.constexpr,
                BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """OUT[b, i] = ln 2 * log2 sum_j exp2(coef2 x_i.y_j + BIAS[b, j])."""
    pid_b = tl.program_id(1).to(tl.int64)
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    mask_m = offs_m < n
    x_base = X + pid_b * sxb
    y_base = Y + pid_b * syb
    run_max = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
    run_sum = tl.zeros((BLOCK_M,), dtype=tl.float32)
    for n0 in range(0, m, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        mask_n = offs_n < m
        bias = tl.load(BIAS + pid_b * sbb + offs_n * sbn, mask=mask_n, other=float("-inf"))
        if USE_DOT:  # (BLOCK_M, BLOCK_N) tile in the MMA layout: reduce over axis 1
            z = _tile_dots(x_base, y_base, offs_m, offs_n, mask_m, mask_n, sxn, sxk, syn, syk,
                           D, USE_DOT, PRECISION, BLOCK_M, BLOCK_N, BLOCK_K) * coef2 + bias[None, :]
            run_max, run_sum = _online_lse(run_max, run_sum, z, 1)
        else:  # transposed (BLOCK_N, BLOCK_M) tile: reduce over axis 0, inside each thread
            z = _register_dots_t(x_base, y_base, offs_m, offs_n, mask_m, mask_n, sxn, sxk, syn, syk,
                                 D, BLOCK_M, BLOCK_N) * coef2 + bias[:, None]
            run_max, run_sum = _online_lse(run_max, run_sum, z, 0)
    lse2 = run_max + tl.log2(run_sum)  # -inf (not NaN) when every column had weight zero
    tl.store(OUT + pid_b * sob + offs_m * son, lse2 * 0.6931471805599453, mask=mask_m)


@triton.autotune(configs=_configs(), key=[*_KEY, "BLOCK_V"],
                 prune_configs_by={"early_config_prune": _prune_apply})
@triton.jit
def _apply_kernel(X, Y, ROW_BIAS, COL_BIAS, V, OUT, n, m, k, coef2,
                  sxb, sxn, sxk, syb, syn, syk, srb, srn, scb, scn, svb, svn, svk, sob, son, sok,
                  n_bucket, m_bucket,
                  D: tl.constexpr, USE_DOT: tl.constexpr, PRECISION: tl.constexpr, BLOCK_V: tl.constexpr,
                  BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """OUT[b, i, :] = sum_j exp2(coef2 x_i.y_j + COL_BIAS[b, j] + ROW_BIAS[b, i]) V[b, j, :], with the
    accumulator rescaled by a running row max (FlashAttention style), so unconverged or unbalanced
    potentials cannot overflow it."""
    pid_b = tl.program_id(1).to(tl.int64)
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_v = tl.program_id(2) * BLOCK_V + tl.arange(0, BLOCK_V)
    mask_m = offs_m < n
    mask_v = offs_v < k
    x_base = X + pid_b * sxb
    y_base = Y + pid_b * syb
    row_bias = tl.load(ROW_BIAS + pid_b * srb + offs_m * srn, mask=mask_m, other=float("-inf"))
    run_max = tl.full((BLOCK_M,), float("-inf"), dtype=tl.float32)
    acc = tl.zeros((BLOCK_M, BLOCK_V), dtype=tl.float32)
    for n0 in range(0, m, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        mask_n = offs_n < m
        dots = _tile_dots(x_base, y_base, offs_m, offs_n, mask_m, mask_n, sxn, sxk, syn, syk,
                          D, USE_DOT, PRECISION, BLOCK_M, BLOCK_N, BLOCK_K)
        col_bias = tl.load(COL_BIAS + pid_b * scb + offs_n * scn, mask=mask_n, other=float("-inf"))
        z = dots * coef2 + col_bias[None, :] + row_bias[:, None]
        new_max, shift = _safe_max(run_max, z, 1)
        p = tl.exp2(z - shift[:, None])
        vt = tl.load(V + pid_b * svb + offs_n[:, None] * svn + offs_v[None, :] * svk,
                     mask=mask_n[:, None] & mask_v[None, :], other=0.0)
        acc = acc * tl.exp2(run_max - shift)[:, None] + tl.dot(p, vt, input_precision=PRECISION)
        run_max = new_max
    out = acc * tl.exp2(run_max)[:, None]  # run_max = -inf on an empty row: exp2 gives 0
    tl.store(OUT + pid_b * sob + offs_m[:, None] * son + offs_v[None, :] * sok, out,
             mask=mask_m[:, None] & mask_v[None, :])


# ----------------------------------------------------------------------------------------- host side
def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(
            f"precision must be one of {PRECISIONS} (strict fp32, TF32, 3-pass TF32), got {precision!r}"
        )
    return precision


def _points(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int, bool]:
    """fp32 coordinates for the kernels, (x, y, D, use_dot). Register kernel: d as is, stored coordinate-major
    (a (B, n, d) view of (B, d, n) memory) so that one coordinate of a block of points is one vector load.
    tl.dot kernel: row-major, d zero-padded to a multiple of 16 and >= 32 (2.4-6)."""
    if x.dim() != 3 or y.dim() != 3 or x.shape[0] != y.shape[0] or x.shape[2] != y.shape[2]:
        raise ValueError(
            f"x, y must have shapes (B, n, d), (B, m, d); got {tuple(x.shape)}, {tuple(y.shape)}"
        )
    d = x.shape[2]
    x, y = x.detach().float(), y.detach().float()
    if d <= REGISTER_MAX_D:
        x, y = (t.transpose(1, 2).contiguous().transpose(1, 2) for t in (x, y))
        return x, y, d, False
    padded = max(32, 16 * triton.cdiv(d, 16))
    if padded != d:
        x = torch.nn.functional.pad(x, (0, padded - d))
        y = torch.nn.functional.pad(y, (0, padded - d))
    return x, y, padded, True


def _log2_units(t: torch.Tensor) -> torch.Tensor:
    return t.detach().float() * LOG2E


def lse_dot(
    x: torch.Tensor, y: torch.Tensor, bias: torch.Tensor, coef: float, precision: str = "ieee"
) -> torch.Tensor:
    """out_i = LSE_j(coef * x_i.y_j + bias_j); x (B, n, d), y (B, m, d), bias (B, m) (-inf allowed) -> (B, n).

    Computed in fp32 and returned in x's dtype; no host synchronisation (except the first autotuning call).
    """
    precision = check_precision(precision)
    xs, ys, D, use_dot = _points(x, y)
    B, n, m = xs.shape[0], xs.shape[1], ys.shape[1]
    bias2 = _log2_units(bias).expand(B, m)
    out = torch.empty(B, n, dtype=torch.float32, device=xs.device)

    def grid(meta):
        return (triton.cdiv(n, meta["BLOCK_M"]), B)

    _lse_kernel[grid](
        xs, ys, bias2, out, n, m, float(coef) * LOG2E,
        *xs.stride(), *ys.stride(), *bias2.stride(), *out.stride(),
        triton.next_power_of_2(n), triton.next_power_of_2(m),
        D=D, USE_DOT=use_dot,
        PRECISION=precision if use_dot else "ieee",  # the register kernel has no dot: one compile for all
    )
    return out.to(x.dtype)


def apply_dot(
    x: torch.Tensor,
    y: torch.Tensor,
    row_bias: torch.Tensor,
    col_bias: torch.Tensor,
    coef: float,
    V: torch.Tensor,
    precision: str = "ieee",
) -> torch.Tensor:
    """out_i = sum_j exp(coef * x_i.y_j + col_bias_j + row_bias_i) V_j; x (B, n, d), y (B, m, d),
    row_bias (B, n), col_bias (B, m), V (B, m, k) -> (B, n, k). P @ V; P^T @ U is the same call with the
    roles of (x, row_bias) and (y, col_bias) swapped. fp32 inside, returned in V's dtype."""
    precision = check_precision(precision)
    xs, ys, D, use_dot = _points(x, y)
    B, n, m = xs.shape[0], xs.shape[1], ys.shape[1]
    if V.dim() != 3 or V.shape[1] != m:
        raise ValueError(f"V must have shape (B, m={m}, k), got {tuple(V.shape)}")
    k = V.shape[2]
    Vs = V.detach().float().expand(B, m, k)
    rb2, cb2 = _log2_units(row_bias).expand(B, n), _log2_units(col_bias).expand(B, m)
    out = torch.empty(B, n, k, dtype=torch.float32, device=xs.device)
    block_v = min(MAX_BLOCK_V, max(16, triton.next_power_of_2(k)))

    def grid(meta):
        return (triton.cdiv(n, meta["BLOCK_M"]), B, triton.cdiv(k, block_v))

    _apply_kernel[grid](
        xs, ys, rb2, cb2, Vs, out, n, m, k, float(coef) * LOG2E,
        *xs.stride(), *ys.stride(), *rb2.stride(), *cb2.stride(), *Vs.stride(), *out.stride(),
        triton.next_power_of_2(n), triton.next_power_of_2(m),
        D=D, USE_DOT=use_dot, PRECISION=precision, BLOCK_V=block_v,
    )
    return out.to(V.dtype)
