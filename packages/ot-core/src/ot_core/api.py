"""The solver facade: ``solve`` on a cost matrix and ``solve_sample`` on point clouds.

One entry point per input kind; the variant is chosen by the arguments (POT's names):
``reg`` > 0 entropic, ``reg`` = None or 0 exact; ``unbalanced=rho`` or ``(rho_a, rho_b)`` KL-relaxed marginals
(``(rho, inf)`` semi-relaxed); ``mass=m`` partial OT.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any

import torch

from . import _checks as chk
from .autodiff import attach_envelope, point_gradients
from .costs import Cost, CallableCost, Cosine, get_cost
from .geometry import DENSE_MAX_PAIRS_CPU, TRITON_MIN_PAIRS_CUDA, DenseGeometry, Geometry, PointCloud
from .result import DensePlan, LazyPlan, OTResult
from .solvers.exact import EMD_NUM_ITER_MAX, emd_single, partial_single, warn_emd
from .solvers.partial import entropic_partial
from .solvers.semidual import semidual_semirelaxed
from .solvers.sinkhorn import dual_value, eps_stages, sinkhorn

__all__ = ["solve", "solve_sample"]

GRAD_MODES = ("envelope", "unroll", "detach")
UPDATES = ("alternating", "symmetric")
SCHEDULES = (None, "geomloss", "scaling")
METHODS = ("auto", "sinkhorn", "semidual")


@dataclass
class _Options:
    reg: float | None
    reg_type: str
    rho: tuple[float, float]
    mass: Any
    prior: tuple[Any, Any]
    method: str
    max_iter: int
    tol: float
    check_every: int
    updates: str
    eps_schedule: str | None
    scaling: float
    init: Any
    grad: str
    value_convention: str
    num_iter_max: int
    schedule_start: float | None = None  # first epsilon of eps_schedule (default: max C)


def solve(
    C,
    a=None,
    b=None,
    *,
    reg: float | None = None,
    reg_type: str = "kl",
    reg_scale: str = "absolute",
    scale_cost: str | float | None = None,
    unbalanced=None,
    mass=None,
    prior=(None, None),
    method: str = "auto",
    max_iter: int = 1000,
    tol: float = 1e-6,
    check_every: int = 10,
    updates: str = "alternating",
    eps_schedule: str | None = None,
    scaling: float = 0.5,
    init=None,
    grad: str = "envelope",
    value_convention: str = "ot_core",
    block_rows: int | None = None,
    num_iter_max: int = EMD_NUM_ITER_MAX,
) -> OTResult:
    """Solve OT on a cost matrix C (n, m) or a batch (B, n, m).

    Args:
        a, b: marginal weights (n,), (m,) or batched; default uniform. Zero weights are allowed.
        reg: absolute epsilon (entropy reg. eps KL(pi | a b^T)); None or 0 gives exact OT (network simplex).
        reg_type: "kl" (default), "entropy" (partial OT's POT convention; identical plans for balanced OT) or "l2".
        reg_scale: "absolute", or "max" / "mean": multiply ``reg`` by that statistic of C (OTT's relative eps).
        scale_cost: None, "max", "mean" or a number k: solve on C / k (potentials and values in units of C / k).
        unbalanced: None (balanced), rho, or (rho_a, rho_b) with inf for a hard side: KL marginal penalties.
        mass: transported mass for partial OT (entropic with reg > 0, exact with reg = 0).
        prior: (G_a, G_b) factors of the relaxed sides' KL references a G_a, b G_b (e.g. prior growth).
        method: "auto"/"sinkhorn", or "semidual" (L-BFGS over f; semi-relaxed problems with hard columns).
        max_iter, tol, check_every: stop when the marginal (optimality) residual < tol, checked every
            ``check_every`` iterations (the only host synchronisation).
        updates: "alternating" or "symmetric" (GeomLoss). eps_schedule: None, "scaling" (warm start through
            eps_k = max C * scaling^(2k), then converge) or "geomloss" (that schedule only, no convergence loop).
        init: (f, g) warm start in cost units. grad: "envelope" (default), "unroll" or "detach".
        value_convention: "ot_core" (generalised-KL primal = dual value) or "pot" (POT's KL without mass terms).

    Returns:
        OTResult: potentials f, g (cost units), ``value`` (with gradients in C, a, b), ``value_linear`` = <C, pi>,
        ``plan`` / ``lazy_plan``, ``n_iter``, ``errors``, ``converged``.
    """
    C = chk.as_tensor(C, "C")
    if C.dim() not in (2, 3):
        raise ValueError(f"C must have shape (n, m) or (B, n, m), got {tuple(C.shape)}")
    if C.shape[-1] == 0 or C.shape[-2] == 0:
        raise ValueError(f"C has an empty side: shape {tuple(C.shape)}")
    chk.check_finite(C.detach(), "C")
    batched = C.dim() == 3
    Cb = C if batched else C.unsqueeze(0)
    B, n, m = Cb.shape
    wa = chk.check_weights(a, n, B, "a", Cb)
    wb = chk.check_weights(b, m, B, "b", Cb)
    opts = _options(reg, reg_type=reg_type, unbalanced=unbalanced, mass=mass, prior=prior, method=method,
                    max_iter=max_iter, tol=tol, check_every=check_every, updates=updates, eps_schedule=eps_schedule,
                    scaling=scaling, init=init, grad=grad, value_convention=value_convention,
                    num_iter_max=num_iter_max)
    track = opts.grad == "unroll"
    geom = DenseGeometry(Cb if track else Cb.detach(), block_rows)
    _check_marginals(wa, wb, opts)

    def grad_fn(plan, eps, f, g, go, needs):
        need_C, need_a, need_b = needs
        gC = go[:, None, None] * plan._dense() if need_C else None
        ga, gb = _weight_grads(plan, f, g, wa, wb, eps, opts, go, need_a, need_b)
        return _unbatch(gC, batched), _unbatch_w(ga, a), _unbatch_w(gb, b)

    return _solve(geom, wa, wb, opts, reg_scale, scale_cost, batched, (C, a, b), grad_fn)


def solve_sample(
    x,
    y,
    a=None,
    b=None,
    *,
    cost: str | Cost | Any = "sqeuclidean",
    half: bool = False,
    reg: float | None = None,
    backend: str = "auto",
    block_rows: int | None = None,
    precision: str = "ieee",
    allow_tf32: bool = False,
    center: bool = True,
    lengths=None,
    eps_start: float | None = None,
    **kwargs,
) -> OTResult:
    """Solve OT between point clouds x (n, d) and y (m, d) (or batches (B, n, d), (B, m, d)).

    The cost matrix is never stored unless ``backend="dense"`` (or "auto" on a small CPU problem):
    ``"chunked"`` evaluates it in row blocks of ``block_rows`` (memory O((n + m) d + block_rows m)); ``"triton"``
    uses the fused CUDA kernels (squared Euclidean, computed in fp32; ``auto`` picks them for large float32
    CUDA problems). ``precision`` of the Triton dot products: "ieee" (default, strict fp32), "tf32x3" (3-pass
    TF32, near fp32) or "tf32" (TF32, ~1e-3 relative error in the scores); ``allow_tf32=True`` is the same as
    ``precision="tf32"``. ``center=True`` subtracts a common mean from x and y (exact for translation-invariant
    costs; it reduces cancellation in the dot-form kernels).
    ``lengths=(len_a, len_b)``: per-batch numbers of valid points for ragged batches (the rest is padding).
    ``eps_start``: first epsilon of ``eps_schedule`` (default: GeomLoss's squared bounding-box diameter of both
    clouds for squared-Euclidean costs, max C otherwise).
    Other keyword arguments are those of :func:`solve`. ``lazy_plan.barycentric_map()`` maps x onto y.
    """
    x = chk.as_tensor(x, "x")
    y = chk.as_tensor(y, "y", like=x)
    if x.dim() not in (2, 3) or y.dim() != x.dim():
        raise ValueError(
            f"x and y must both have shape (n, d) or (B, n, d); got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if x.shape[-1] != y.shape[-1] or (x.dim() == 3 and x.shape[0] != y.shape[0]):
        raise ValueError(f"x {tuple(x.shape)} and y {tuple(y.shape)} must share the batch size and dimension d")
    if x.shape[-2] == 0 or y.shape[-2] == 0:
        raise ValueError("x and y need at least one point each")
    chk.check_finite(x.detach(), "x")
    chk.check_finite(y.detach(), "y")
    chk.choice(backend, "backend", ("auto", "dense", "chunked", "triton"))
    chk.choice(precision, "precision", ("ieee", "tf32", "tf32x3"))
    if allow_tf32 and precision == "ieee":
        precision = "tf32"
    cost_fn = get_cost(cost, half)
    batched = x.dim() == 3
    xb, yb = (x, y) if batched else (x.unsqueeze(0), y.unsqueeze(0))
    B, n, m = xb.shape[0], xb.shape[1], yb.shape[1]
    wa = chk.check_weights(a, n, B, "a", xb)
    wb = chk.check_weights(b, m, B, "b", xb)
    if lengths is not None:
        wa, wb = _ragged(wa, wb, lengths, a, b)
    unknown = sorted(set(kwargs) - set(_SOLVE_KEYWORDS))
    if unknown:
        raise TypeError(f"solve_sample() got unexpected keyword arguments {unknown}")
    options = {**_SOLVE_KEYWORDS, **kwargs}
    reg_scale, scale_cost = options.pop("reg_scale"), options.pop("scale_cost")
    opts = _options(reg, **options)
    _check_marginals(wa, wb, opts)
    if opts.eps_schedule is not None:
        opts.schedule_start = eps_start if eps_start is not None else _diameter_eps(xb.detach(), yb.detach(), cost_fn)

    track = opts.grad == "unroll"
    xs, ys = (xb, yb) if track else (xb.detach(), yb.detach())
    if center and not isinstance(cost_fn, (Cosine, CallableCost)):
        shift = 0.5 * (xs.mean(dim=1, keepdim=True) + ys.mean(dim=1, keepdim=True))
        xs, ys = xs - shift, ys - shift
    backend = _pick_backend(backend, cost_fn, xs, B, n, m)
    if backend == "dense":
        geom: Geometry = DenseGeometry(cost_fn.matrix(xs, ys), block_rows)
    else:
        geom = PointCloud(xs, ys, cost_fn, backend=backend, block_rows=block_rows, precision=precision)

    def grad_fn(plan, eps, f, g, go, needs):
        need_x, need_y, need_a, need_b = needs
        gx, gy = None, None
        if need_x or need_y:
            def block(i0, i1, c):
                return _plan_block(plan, i0, i1, c, eps)

            gx, gy = point_gradients(plan, xs.detach(), ys.detach(), cost_fn, go, need_x, need_y, block,
                                     geom._rows)
        ga, gb = _weight_grads(plan, f, g, wa, wb, eps, opts, go, need_a, need_b)
        return _unbatch(gx, batched), _unbatch(gy, batched), _unbatch_w(ga, a), _unbatch_w(gb, b)

    result = _solve(geom, wa, wb, opts, reg_scale, scale_cost, batched, (x, y, a, b), grad_fn)
    result.lazy_plan.target_points = yb.detach() if batched else yb[0].detach()
    if result.reg is not None:
        result.extra["target"] = (yb.detach(), torch.log(wb), cost_fn)
    return result


# --------------------------------------------------------------------------------------------- internals
#: solve()'s keyword options and their defaults, which solve_sample() forwards (one source of defaults)
_SOLVE_KEYWORDS = {name: p.default for name, p in inspect.signature(solve).parameters.items()
                   if p.kind is p.KEYWORD_ONLY and name not in ("reg", "block_rows")}


def _options(reg, reg_type, unbalanced, mass, prior, method, max_iter, tol, check_every, updates, eps_schedule,
             scaling, init, grad, value_convention, num_iter_max) -> _Options:
    if reg is not None and not (isinstance(reg, (int, float)) and reg == 0):
        reg = chk.check_reg(reg)
    else:
        reg = None
    chk.choice(reg_type, "reg_type", ("kl", "entropy", "l2"))
    chk.choice(method, "method", METHODS)
    chk.choice(updates, "updates", UPDATES)
    chk.choice(eps_schedule, "eps_schedule", SCHEDULES)
    chk.choice(grad, "grad", GRAD_MODES)
    chk.choice(value_convention, "value_convention", ("ot_core", "pot"))
    rho = chk.parse_unbalanced(unbalanced)
    if int(max_iter) < 1 or int(check_every) < 1:
        raise ValueError(f"max_iter and check_every must be >= 1, got {max_iter} and {check_every}")
    if not tol > 0:
        raise ValueError(f"tol must be > 0, got {tol}")
    if mass is not None and unbalanced is not None:
        raise ValueError("pass either mass= (partial OT) or unbalanced= (KL-relaxed marginals), not both")
    if prior is None:
        prior = (None, None)
    if len(prior) != 2:
        raise ValueError("prior must be a pair (G_a, G_b); use None for a side without prior")
    for side, (p, r) in enumerate(zip(prior, rho)):
        if p is not None and math.isinf(r):
            raise ValueError(f"prior[{side}] is set but that side is a hard marginal; priors act on relaxed sides")
    return _Options(reg, reg_type, rho, mass, tuple(prior), method, int(max_iter), float(tol), int(check_every),
                    updates, eps_schedule, float(scaling), init, grad, value_convention, int(num_iter_max))


def _diameter_eps(x: torch.Tensor, y: torch.Tensor, cost: Cost) -> float | None:
    """GeomLoss's first epsilon for squared-Euclidean costs: the squared diagonal of the bounding box of both
    clouds (``half`` or not); None (-> max C) for other costs."""
    from .costs import SqEuclidean

    if not isinstance(cost, SqEuclidean):
        return None
    pts = torch.cat([x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])])
    return float(((pts.amax(0) - pts.amin(0)) ** 2).sum())


def _check_marginals(wa: torch.Tensor, wb: torch.Tensor, opts: _Options) -> None:
    if opts.mass is not None or not all(math.isinf(r) for r in opts.rho):
        return
    sa, sb = wa.sum(-1), wb.sum(-1)
    rtol = 1e-4 if wa.dtype == torch.float32 else 1e-8
    if not bool(torch.allclose(sa, sb, rtol=rtol, atol=0)):
        raise ValueError(
            f"balanced OT needs equal total masses, but a sums to {sa.tolist()} and b to {sb.tolist()}; "
            "normalise them (a / a.sum(), b / b.sum()) or pass unbalanced=rho"
        )


def _ragged(wa, wb, lengths, a, b):
    if a is not None or b is not None:
        raise ValueError("pass either lengths= (uniform weights on the valid points) or a, b with zeros on padding")
    la, lb = (torch.as_tensor(v, device=wa.device) for v in lengths)
    ia = torch.arange(wa.shape[1], device=wa.device)
    ib = torch.arange(wb.shape[1], device=wb.device)
    if bool((la < 1).any()) or bool((lb < 1).any()) or bool((la > wa.shape[1]).any()) or bool((lb > wb.shape[1]).any()):
        raise ValueError(f"lengths must be in [1, n] and [1, m]; got {la.tolist()} and {lb.tolist()}")
    wa = (ia[None] < la[:, None]).to(wa.dtype) / la[:, None].to(wa.dtype)
    wb = (ib[None] < lb[:, None]).to(wb.dtype) / lb[:, None].to(wb.dtype)
    return wa, wb


def _pick_backend(backend: str, cost: Cost, x: torch.Tensor, B: int, n: int, m: int) -> str:
    from .costs import SqEuclidean

    pairs = B * n * m
    if backend == "auto":
        if x.device.type == "cuda":
            from .ops import triton_available

            fused = isinstance(cost, SqEuclidean) and x.dtype == torch.float32  # the kernels compute in fp32
            if fused and pairs > TRITON_MIN_PAIRS_CUDA and triton_available():
                return "triton"
            return "dense" if pairs <= TRITON_MIN_PAIRS_CUDA else "chunked"
        return "dense" if pairs <= DENSE_MAX_PAIRS_CPU else "chunked"
    if backend == "triton":
        from .ops import check_triton_usable

        check_triton_usable(x)
    return backend


def _resolve_eps(geom: Geometry, reg: float, reg_scale: str, scale_cost) -> tuple[float, float]:
    """Internal epsilon on the unscaled cost, and the cost scale k (values are divided by k)."""
    chk.choice(reg_scale, "reg_scale", ("absolute", "max", "mean"))
    if scale_cost is None:
        k = 1.0
    elif scale_cost == "max":
        k = float(geom.max_cost().max())
    elif scale_cost == "mean":
        k = float(geom.mean_cost().mean())
    elif isinstance(scale_cost, (int, float)) and scale_cost > 0:
        k = float(scale_cost)
    else:
        raise ValueError(f"scale_cost={scale_cost!r}; use None, 'max', 'mean' or a positive number")
    if k <= 0:
        raise ValueError("scale_cost: the cost statistic is 0 (all costs are zero); use scale_cost=None")
    eps = reg
    if reg_scale == "max":
        eps = reg * float(geom.max_cost().max()) / k
    elif reg_scale == "mean":
        eps = reg * float(geom.mean_cost().mean()) / k
    if not eps > 0:
        raise ValueError(f"reg_scale={reg_scale!r} gives epsilon {eps} (the cost statistic is 0); use 'absolute'")
    return eps * k, k


def _solve(geom, wa, wb, opts: _Options, reg_scale, scale_cost, batched, inputs, grad_fn) -> OTResult:
    if opts.reg is None:
        if opts.reg_type == "l2":
            raise ValueError("reg_type='l2' needs reg > 0")
        return _solve_exact(geom, wa, wb, opts, batched, inputs, grad_fn)
    if opts.reg_type == "l2":
        from .solvers.l2 import solve_l2_geometry

        return solve_l2_geometry(geom, wa, wb, opts.reg, batched, max_iter=opts.max_iter, tol=opts.tol)
    eps, k = _resolve_eps(geom, opts.reg, reg_scale, scale_cost)
    rho = tuple(r * k for r in opts.rho)
    log_a, log_b = torch.log(wa), torch.log(wb)
    ctx = torch.enable_grad() if opts.grad == "unroll" else torch.no_grad()
    with ctx:
        if opts.mass is not None:
            result = _entropic_partial(geom, wa, wb, log_a, log_b, eps, opts)
        else:
            result = _entropic(geom, wa, wb, log_a, log_b, eps, rho, opts, k)
    result.reg = opts.reg
    result.extra["eps"] = eps / k
    result.extra["cost_scale"] = k
    if k != 1.0:
        result.f, result.g = result.f / k, result.g / k
    if opts.grad == "envelope":
        plan, f, g = result.lazy_plan, result.f, result.g
        result.value = attach_envelope(
            result.value, inputs, lambda go, needs: grad_fn(plan, eps, f * k, g * k, go.reshape(-1), needs)
        )
    result.value = result.value / k if k != 1.0 else result.value
    _present(result, batched)
    result.warn_if_not_converged()
    return result


def _present(result: OTResult, batched: bool) -> None:
    """Drop the internal batch axis of an unbatched problem (the gradient closures keep the batched plan)."""
    result.f, result.g = _unbatch(result.f, batched), _unbatch(result.g, batched)
    result.value = _unbatch(result.value, batched)
    result.lazy_plan = result.lazy_plan.view(batched)


def _entropic(geom, wa, wb, log_a, log_b, eps, rho, opts: _Options, k) -> OTResult:
    prior = tuple(None if p is None else torch.log(chk.as_tensor(p, "prior", like=wa)).expand_as(w)
                  for p, w in zip(opts.prior, (wa, wb)))
    init = _init(opts.init, geom, k)
    semirelaxed_rows = not math.isinf(rho[0]) and math.isinf(rho[1])
    if opts.method == "semidual":
        if not semirelaxed_rows:
            raise ValueError("method='semidual' solves semi-relaxed problems: pass unbalanced=(rho, inf)")
        out = semidual_semirelaxed(geom, log_a, log_b, eps, rho[0], log_prior=prior[0], max_iter=opts.max_iter,
                                   tol=opts.tol, check_every=opts.check_every, init=init[0])
        if not out.converged and out.n_iter < opts.max_iter:
            # L-BFGS stalls once the objective's changes fall below its rounding; Sinkhorn polishes the last digits
            polished = sinkhorn(geom, log_a, log_b, eps, rho, log_prior=prior, max_iter=opts.max_iter - out.n_iter,
                                tol=opts.tol, check_every=opts.check_every, init=(out.f, out.g))
            polished.n_iter += out.n_iter
            polished.errors = out.errors + polished.errors
            out = polished
    else:
        start = eps
        if opts.eps_schedule:
            start = opts.schedule_start * k if opts.schedule_start is not None else float(geom.max_cost().max())
        stages = eps_stages(eps, opts.eps_schedule, opts.scaling, start)
        max_iter = 1 if opts.eps_schedule == "geomloss" else opts.max_iter
        check_every = max_iter + 1 if opts.eps_schedule == "geomloss" else opts.check_every
        out = sinkhorn(geom, log_a, log_b, eps, rho, log_prior=prior, max_iter=max_iter, tol=opts.tol,
                       check_every=check_every, updates=opts.updates, stages=stages, init=init)
        if opts.eps_schedule == "geomloss":
            out.converged = True  # a fixed schedule: convergence is not tested (GeomLoss semantics)
    value = dual_value(out.f, out.g, wa, wb, out.mass, eps, rho, tuple(None if p is None else p.exp() for p in prior))
    plan = LazyPlan(geom, out.f / eps + log_a, out.g / eps + log_b, eps, batched=True)
    result = OTResult(f=out.f, g=out.g, value=value, lazy_plan=plan, reg=None, n_iter=out.n_iter, errors=out.errors,
                      converged=out.converged, backend=geom.backend, log_a=log_a, log_b=log_b)
    if opts.value_convention == "pot" and not all(math.isinf(r) for r in rho):
        result.value = _pot_unbalanced_value(result, wa, wb, eps, rho)
    return result


def _entropic_partial(geom, wa, wb, log_a, log_b, eps, opts: _Options) -> OTResult:
    mass = _check_mass(opts.mass, wa, wb)
    out = entropic_partial(geom, log_a, log_b, mass, eps, reference="kl" if opts.reg_type == "kl" else "entropy",
                           max_iter=opts.max_iter, tol=opts.tol, check_every=opts.check_every)
    plan = LazyPlan(geom, out.u, out.v, eps, batched=True)
    r, c = plan.row_sums(), plan.col_sums()
    ref_a = log_a if opts.reg_type == "kl" else torch.zeros_like(log_a)
    ref_b = log_b if opts.reg_type == "kl" else torch.zeros_like(log_b)
    value = eps * (_dot(r, out.u - ref_a) + _dot(c, out.v - ref_b) - mass)
    if opts.reg_type == "kl":
        value = value + eps * wa.sum(-1) * wb.sum(-1)
    f, g = eps * (out.u - ref_a), eps * (out.v - ref_b)
    return OTResult(f=f, g=g, value=value, lazy_plan=plan, reg=None, n_iter=out.n_iter, errors=out.errors,
                    converged=out.converged, backend=geom.backend, log_a=log_a, log_b=log_b,
                    extra={"mass": mass})


def _dot(w: torch.Tensor, pot: torch.Tensor) -> torch.Tensor:
    """sum_i w_i pot_i with 0 * (-inf) = 0 (zero-weight points)."""
    return torch.where(w > 0, w * pot, torch.zeros_like(w)).sum(-1)


def _check_mass(mass, wa, wb) -> torch.Tensor:
    m = chk.as_tensor(mass, "mass", like=wa).reshape(-1).expand(wa.shape[0])
    top = torch.minimum(wa.sum(-1), wb.sum(-1))
    if bool((m <= 0).any()) or bool((m > top * (1 + 1e-12)).any()):
        raise ValueError(
            f"mass must be in (0, min(sum a, sum b)] = (0, {top.tolist()}], got {m.tolist()}"
        )
    return torch.minimum(m, top)


def _init(init, geom: Geometry, k: float):
    if init is None:
        return None, None
    if len(init) != 2:
        raise ValueError("init must be a pair (f, g) of potentials in cost units")
    out = []
    for t, size, name in zip(init, (geom.n, geom.m), ("f", "g")):
        if t is None:
            out.append(None)
            continue
        t = chk.as_tensor(t, f"init {name}").to(dtype=geom.dtype, device=geom.device).detach()
        t = t.reshape(-1, size).expand(geom.batch, size).clone() * k
        chk.check_finite(t, f"init {name}")
        out.append(t)
    return tuple(out)


def _pot_unbalanced_value(result: OTResult, wa, wb, eps, rho) -> torch.Tensor:
    """POT's 'total' value: <C,pi> + eps KL(pi|ab) + rho_a KL(pi1|a) + rho_b KL(pi^T 1|b) without mass terms."""
    r, c = result.lazy_plan.row_sums(), result.lazy_plan.col_sums()
    value = _dot(r, result.f) + _dot(c, result.g)  # = <C,pi> + eps sum pi log(pi / ab)
    for marg, w, rh in ((r, wa, rho[0]), (c, wb, rho[1])):
        if not math.isinf(rh):
            value = value + rh * _dot(marg, torch.log(marg / w))
    return value


def _solve_exact(geom: Geometry, wa, wb, opts: _Options, batched, inputs, grad_fn) -> OTResult:
    if not all(math.isinf(r) for r in opts.rho):
        raise ValueError("exact (reg=0) unbalanced OT is not available; pass reg > 0 for unbalanced problems")
    C = geom.cost_matrix().detach()
    plans, us, vs = [], [], []
    for bi in range(geom.batch):
        if opts.mass is not None:
            mass = _check_mass(opts.mass, wa, wb)
            if bool((C[bi] < 0).any()):
                raise ValueError("exact partial OT needs a non-negative cost; shift C by its minimum")
            P, warning = partial_single(wa[bi], wb[bi], C[bi], float(mass[bi]), opts.num_iter_max)
            u, v = torch.zeros(geom.n, dtype=torch.float64), torch.zeros(geom.m, dtype=torch.float64)
        else:
            P, u, v, warning = emd_single(wa[bi], wb[bi], C[bi], opts.num_iter_max)
        warn_emd(warning)
        plans.append(P)
        us.append(u)
        vs.append(v)
    P = torch.stack(plans).to(dtype=geom.dtype, device=geom.device)
    f = torch.stack(us).to(dtype=geom.dtype, device=geom.device)
    g = torch.stack(vs).to(dtype=geom.dtype, device=geom.device)
    value = (P * C).sum(dim=(1, 2))
    plan = DensePlan(P, batched=True)
    result = OTResult(f=f, g=g, value=value, lazy_plan=plan, reg=None, backend="emd",
                      extra={"value_linear": value.detach()})
    if opts.grad == "envelope":
        result.value = attach_envelope(value, inputs, lambda go, needs: grad_fn(plan, None, f, g, go.reshape(-1), needs))
    _present(result, batched)
    return result


def _plan_block(plan, i0: int, i1: int, c: torch.Tensor, eps: float | None) -> torch.Tensor:
    if isinstance(plan, DensePlan):
        return plan.P[:, i0:i1]
    return torch.exp(plan.u[:, i0:i1, None] + plan.v[:, None, :] - c / eps)


def _weight_grads(plan, f, g, wa, wb, eps, opts: _Options, go, need_a, need_b):
    """Danskin gradients of the value in the weights (B, n), (B, m)."""
    if not (need_a or need_b):
        return None, None
    if opts.mass is not None and opts.reg is not None:
        raise NotImplementedError("gradients in the weights are not available for entropic partial OT")
    balanced = all(math.isinf(r) for r in opts.rho)
    if balanced or eps is None:  # tangent to the simplex (POT centres its duals the same way)
        ga = (f - f.mean(-1, keepdim=True)) if need_a else None
        gb = (g - g.mean(-1, keepdim=True)) if need_b else None
    else:
        r, c = plan.row_sums(), plan.col_sums()

        def side(pot, w, marg, other, rho, prior):
            ratio = torch.where(w > 0, marg / w, torch.ones_like(w))
            base = pot if math.isinf(rho) else rho * (1 - torch.exp(-pot / rho)) * (1 if prior is None else prior)
            return base - eps * (ratio - other.sum(-1, keepdim=True))

        pa, pb = (None if p is None else chk.as_tensor(p, "prior", like=wa) for p in opts.prior)
        ga = side(f, wa, r, wb, opts.rho[0], pa) if need_a else None
        gb = side(g, wb, c, wa, opts.rho[1], pb) if need_b else None
    return (None if ga is None else go[:, None] * ga), (None if gb is None else go[:, None] * gb)


def _unbatch(t, batched: bool):
    return t if (t is None or batched) else t[0]


def _unbatch_w(grad, user_w):
    """Match a weight gradient (B, n) to the shape the user passed."""
    if grad is None or user_w is None or not isinstance(user_w, torch.Tensor):
        return None
    if user_w.dim() == 1:
        return grad.sum(0)
    return grad
