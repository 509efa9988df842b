"""Backends agree (dense, chunked, batched; T15, E2) and gradients are right (T17, unroll gradcheck)."""

import math

import ot
import pytest
import torch

import ot_core as otc


def clouds(n, m, d=2, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, d, dtype=dtype, generator=g), torch.randn(m, d, dtype=dtype, generator=g) + 0.3)


@pytest.mark.parametrize("cost", ["sqeuclidean", "euclidean", "cosine"])
@pytest.mark.parametrize("kind", ["balanced", "semi", "partial"])
def test_chunked_equals_dense(cost, kind):
    x, y = clouds(70, 53, d=3)
    kw = {"balanced": {}, "semi": {"unbalanced": (2.0, math.inf)}, "partial": {"mass": 0.5}}[kind]
    dense = otc.solve_sample(x, y, cost=cost, reg=0.1, backend="dense", tol=1e-12, max_iter=20_000, **kw)
    chunked = otc.solve_sample(x, y, cost=cost, reg=0.1, backend="chunked", block_rows=7, tol=1e-12,
                               max_iter=20_000, **kw)
    torch.testing.assert_close(chunked.f, dense.f, atol=1e-12, rtol=0)
    torch.testing.assert_close(chunked.g, dense.g, atol=1e-12, rtol=0)
    torch.testing.assert_close(chunked.value, dense.value, atol=1e-12, rtol=0)
    torch.testing.assert_close(chunked.value_linear, dense.value_linear, atol=1e-12, rtol=0)
    V = torch.randn(53, 4, dtype=torch.float64)
    torch.testing.assert_close(chunked.lazy_plan @ V, dense.plan @ V, atol=1e-12, rtol=0)
    torch.testing.assert_close(chunked.lazy_plan.T @ torch.ones(70, dtype=torch.float64), dense.plan.sum(0),
                               atol=1e-12, rtol=0)


def test_chunked_potentials_match_pot_lazy_empirical_sinkhorn():  # T15
    x, y = clouds(40, 30)
    res = otc.solve_sample(x, y, reg=0.5, backend="chunked", block_rows=7, tol=1e-12, max_iter=100_000)
    log_u, log_v = ot.bregman.empirical_sinkhorn(x, y, 0.5, isLazy=True, batchSize=7, stopThr=1e-12)
    a = torch.full((40,), 1 / 40, dtype=torch.float64)
    diff = res.f / 0.5 + torch.log(a) - log_u
    assert float((diff - diff.mean()).abs().max()) < 1e-7


def test_batched_point_clouds_and_ragged_lengths():
    B, n, m = 3, 25, 20
    g = torch.Generator().manual_seed(1)
    x = torch.randn(B, n, 2, dtype=torch.float64, generator=g)
    y = torch.randn(B, m, 2, dtype=torch.float64, generator=g)
    res = otc.solve_sample(x, y, reg=0.5, tol=1e-12, max_iter=20_000)
    for k in range(B):
        one = otc.solve_sample(x[k], y[k], reg=0.5, tol=1e-12, max_iter=20_000)
        torch.testing.assert_close(res.value[k], one.value, rtol=1e-10, atol=0)
    lengths = (torch.tensor([25, 10, 17]), torch.tensor([20, 20, 5]))
    ragged = otc.solve_sample(x, y, reg=0.5, lengths=lengths, tol=1e-12, max_iter=20_000)
    for k in range(B):
        la, lb = int(lengths[0][k]), int(lengths[1][k])
        one = otc.solve_sample(x[k, :la], y[k, :lb], reg=0.5, tol=1e-12, max_iter=20_000)
        torch.testing.assert_close(ragged.value[k], one.value, rtol=1e-9, atol=0)
        torch.testing.assert_close(ragged.plan[k, :la, :lb], one.plan, rtol=1e-8, atol=1e-14)
        assert float(ragged.plan[k, la:].abs().sum()) == 0.0


MEMORY_PROBE = """
import resource, sys, torch, ot_core
n = int(sys.argv[1]); cost = sys.argv[2]
g = torch.Generator().manual_seed(0)
x, y = torch.randn(n, 2, generator=g), torch.randn(n, 2, generator=g)
ot_core.solve_sample(x[:50], y[:50], reg=0.1, cost=cost, max_iter=2)  # warm up allocator and imports
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
res = ot_core.solve_sample(x, y, cost=cost, reg=0.1, backend="chunked", max_iter=1, grad="detach")
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) * 1024)
"""


@pytest.mark.parametrize("cost", ["sqeuclidean", "cosine"])
def test_chunked_memory_is_bounded_for_every_cost(cost):  # E2 / R16 at n = 8,000 (dense fp32: 256 MB)
    import subprocess
    import sys

    n = 8_000
    out = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(n), cost], capture_output=True, text=True,
                         check=True, env={"OMP_NUM_THREADS": "2", "PATH": ""})
    extra = int(out.stdout.strip().splitlines()[-1])
    assert extra < 100e6 < n * n * 4


def test_envelope_gradient_in_cost_is_the_plan():  # T17
    x, y = clouds(30, 20)
    C = (torch.cdist(x, y) ** 2)
    C = (C / C.max()).requires_grad_(True)
    res = otc.solve(C, reg=0.05, tol=1e-12, max_iter=100_000)
    res.value.backward()
    torch.testing.assert_close(C.grad, res.plan, atol=1e-12, rtol=0)
    Ct = C.detach().clone().requires_grad_(True)
    pot = ot.solve(Ct, reg=0.05, tol=1e-13, max_iter=100_000, grad="envelope")
    pot.value.backward()
    torch.testing.assert_close(C.grad, Ct.grad, atol=1e-8, rtol=0)


@pytest.mark.parametrize("unbalanced", [None, (1.0, 2.0), (3.0, math.inf)])
def test_weight_gradients_match_finite_differences(unbalanced):
    x, y = clouds(12, 9, seed=2)
    C = torch.cdist(x, y) ** 2
    g = torch.Generator().manual_seed(3)
    a = torch.rand(12, dtype=torch.float64, generator=g) + 0.5
    b = torch.rand(9, dtype=torch.float64, generator=g) + 0.5
    if unbalanced is None:
        a, b = a / a.sum(), b / b.sum()
    kw = {"reg": 0.2, "unbalanced": unbalanced, "tol": 1e-13, "max_iter": 200_000}
    a_var = a.clone().requires_grad_(True)
    otc.solve(C, a_var, b, **kw).value.backward()
    h = 1e-6
    for trial in range(3):
        direction = torch.randn(12, dtype=torch.float64, generator=g)
        if unbalanced is None:
            direction -= direction.mean()  # tangent to the simplex
        fd = (otc.solve(C, a + h * direction, b, **kw).value - otc.solve(C, a - h * direction, b, **kw).value) / (2 * h)
        torch.testing.assert_close((a_var.grad * direction).sum(), fd, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("cost", ["sqeuclidean", "euclidean"])
def test_point_gradients_match_finite_differences(cost):
    x, y = clouds(15, 11, seed=4)
    xv, yv = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    kw = {"reg": 0.1, "cost": cost, "tol": 1e-13, "max_iter": 200_000}
    otc.solve_sample(xv, yv, backend="chunked", block_rows=4, **kw).value.backward()
    h = 1e-6
    for (i, k) in [(0, 0), (7, 1)]:
        e = torch.zeros_like(x)
        e[i, k] = h
        fd_x = (otc.solve_sample(x + e, y, **kw).value - otc.solve_sample(x - e, y, **kw).value) / (2 * h)
        torch.testing.assert_close(xv.grad[i, k], fd_x, rtol=1e-5, atol=1e-9)
        e = torch.zeros_like(y)
        e[min(i, 10), k] = h
        fd_y = (otc.solve_sample(x, y + e, **kw).value - otc.solve_sample(x, y - e, **kw).value) / (2 * h)
        torch.testing.assert_close(yv.grad[min(i, 10), k], fd_y, rtol=1e-5, atol=1e-9)


@pytest.mark.filterwarnings("ignore:OT solver stopped")  # a fixed number of unrolled iterations, on purpose
def test_unrolled_gradients_pass_gradcheck_and_agree_with_envelope():
    x, y = clouds(5, 4, seed=5)
    C0 = torch.cdist(x, y) ** 2

    def value(C):
        return otc.solve(C, reg=0.5, grad="unroll", max_iter=300, tol=1e-300 ** 0.5, check_every=1000).value

    C = C0.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(value, (C,), eps=1e-6, atol=1e-7)
    value(C).backward()
    C_env = C0.clone().requires_grad_(True)
    otc.solve(C_env, reg=0.5, tol=1e-14, max_iter=100_000).value.backward()
    torch.testing.assert_close(C.grad, C_env.grad, rtol=1e-5, atol=1e-10)


def test_grad_mode_and_rng_are_restored():  # R12
    x, y = clouds(10, 10)
    state = torch.get_rng_state()
    with torch.no_grad():
        otc.solve_sample(x, y, reg=1.0)
        assert not torch.is_grad_enabled()
    assert torch.is_grad_enabled()
    otc.solve_sample(x, y, reg=1.0, grad="unroll", max_iter=2000)
    assert torch.is_grad_enabled()
    assert torch.equal(state, torch.get_rng_state())


def test_plan_sampling_frequencies_follow_the_plan():
    x, y = clouds(6, 5, seed=6)
    res = otc.solve_sample(x, y, reg=0.5, tol=1e-12, max_iter=10_000)
    gen = torch.Generator().manual_seed(0)
    k = 60_000
    i, j = res.lazy_plan.sample(k, generator=gen)
    counts = torch.zeros(6, 5, dtype=torch.float64)
    counts.index_put_((i, j), torch.ones(k, dtype=torch.float64), accumulate=True)
    expected = res.plan / res.plan.sum() * k
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 60  # 29 degrees of freedom: p ~ 1e-3 at 58
    # same generator seed, same pairs; different seed, different pairs
    i2, j2 = res.lazy_plan.sample(k, generator=torch.Generator().manual_seed(0))
    assert torch.equal(i, i2) and torch.equal(j, j2)


def test_barycentric_map_and_out_of_sample_transport_agree():
    x, y = clouds(30, 25, seed=7)
    res = otc.solve_sample(x, y, reg=0.1, tol=1e-12, max_iter=20_000)
    mapped = res.lazy_plan.barycentric_map()
    torch.testing.assert_close(res.transport(x), mapped, atol=1e-8, rtol=0)
    dense = (res.plan @ y) / res.plan.sum(1, keepdim=True)
    torch.testing.assert_close(mapped, dense, atol=1e-12, rtol=0)
