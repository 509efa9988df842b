"""Partial OT, exact OT, L2-regularised OT and barycenters against POT (spec T7-T13, E7)."""

import numpy as np
import ot
import pytest
import torch

import ot_core as otc


def cloud_problem(n, m, seed, uniform=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, dtype=torch.float64, generator=g)
    y = torch.randn(m, 2, dtype=torch.float64, generator=g) + 0.5
    if uniform:
        a, b = torch.full((n,), 1 / n, dtype=torch.float64), torch.full((m,), 1 / m, dtype=torch.float64)
    else:
        a = torch.distributions.Dirichlet(torch.ones(n, dtype=torch.float64)).sample()
        b = torch.distributions.Dirichlet(torch.ones(m, dtype=torch.float64)).sample()
    C = torch.cdist(x, y) ** 2
    return x, y, C / C.max(), a, b


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("reg,method", [(0.1, "sinkhorn"), (0.05, "sinkhorn"), (0.05, "sinkhorn_log"),
                                        (0.01, "sinkhorn_log")])
@pytest.mark.parametrize("mass", [0.3, 0.7])
def test_entropic_partial_matches_pot(reg, method, mass):  # T7, including POT #723's regime (eps = 0.1)
    _, _, C, a, b = cloud_problem(40, 30, seed=1)
    res = otc.solve(C, a, b, reg=reg, mass=mass, reg_type="entropy", tol=1e-14, max_iter=10_000)
    P = ot.partial.entropic_partial_wasserstein(a.numpy(), b.numpy(), C.numpy(), reg, mass, numItermax=10_000,
                                                stopThr=1e-14, method=method)
    P = torch.from_numpy(P)
    torch.testing.assert_close(res.plan, P, atol=1e-10, rtol=1e-6)
    assert abs(float(res.plan.sum()) - mass) < 1e-10
    assert bool((res.plan.sum(1) <= a + 1e-12).all()) and bool((res.plan.sum(0) <= b + 1e-12).all())
    torch.testing.assert_close(otc.partial(a, b, C, mass, reg=reg, tol=1e-14, max_iter=10_000), P, atol=1e-10,
                               rtol=1e-6)


def test_entropic_partial_float32_small_eps_is_finite():
    _, _, C, a, b = cloud_problem(60, 50, seed=2)
    res = otc.solve(C.float(), a.float(), b.float(), reg=1e-3, mass=0.5, max_iter=2000)
    assert torch.isfinite(res.plan).all() and abs(float(res.plan.sum()) - 0.5) < 1e-4


def test_partial_kl_reference_equals_entropy_for_uniform_weights():
    _, _, C, a, b = cloud_problem(30, 20, seed=3, uniform=True)
    kl = otc.solve(C, a, b, reg=0.05, mass=0.6, reg_type="kl", tol=1e-14, max_iter=10_000)
    ent = otc.solve(C, a, b, reg=0.05, mass=0.6, reg_type="entropy", tol=1e-14, max_iter=10_000)
    torch.testing.assert_close(kl.plan, ent.plan, atol=1e-12, rtol=1e-8)


@pytest.mark.parametrize("mass", [0.2, 0.5, 0.99])
def test_exact_partial_value_matches_pot(mass):  # T8
    _, _, C, a, b = cloud_problem(50, 40, seed=4)
    res = otc.solve(C, a, b, mass=mass)
    ref = ot.partial.partial_wasserstein2(a.numpy(), b.numpy(), C.numpy(), mass, numItermax=10**7)
    torch.testing.assert_close(res.value, torch.as_tensor(float(ref), dtype=torch.float64), rtol=1e-9, atol=1e-14)
    assert abs(float(res.plan.sum()) - mass) < 1e-12


def test_partial_pair_private_class_gets_no_mass():  # E7
    x, y, lx, _ = otc.datasets.partial_pair()
    C = torch.cdist(x, y) ** 2
    exact = otc.solve(C, mass=2 / 3)
    assert float(exact.plan[lx == 2].sum()) == 0.0
    entropic = otc.solve(C / C.max(), mass=2 / 3, reg=0.01, tol=1e-12, max_iter=10_000)
    assert float(entropic.plan[lx == 2].sum()) < 1e-4 * 2 / 3
    # entropic partial values approach the exact one as eps decreases
    gaps = [abs(float(otc.solve(C / C.max(), mass=2 / 3, reg=r, tol=1e-12, max_iter=20_000).value_linear)
                - float(exact.value / C.max())) for r in (0.05, 0.01, 0.002)]
    assert gaps[0] > gaps[1] > gaps[2]


def test_emd_value_duals_and_plan():  # T9
    _, _, C, a, b = cloud_problem(60, 45, seed=5)
    res = otc.solve(C, a, b)
    ref_value = ot.emd2(a.numpy(), b.numpy(), C.numpy(), numItermax=10**7)
    torch.testing.assert_close(res.value, torch.as_tensor(ref_value, dtype=torch.float64), rtol=1e-10, atol=0)
    assert bool((res.f[:, None] + res.g[None, :] <= C + 1e-10).all())  # dual feasibility
    torch.testing.assert_close((res.f * a).sum() + (res.g * b).sum(), res.value, rtol=1e-9, atol=1e-14)
    torch.testing.assert_close(otc.emd2(a, b, C), res.value)
    r, c = res.marginals
    torch.testing.assert_close(r, a, atol=1e-12, rtol=0)
    torch.testing.assert_close(c, b, atol=1e-12, rtol=0)


def test_emd_gradients_are_plan_and_centred_duals():
    _, _, C, a, b = cloud_problem(20, 20, seed=6)
    C = C.clone().requires_grad_(True)
    a = a.clone().requires_grad_(True)
    value = otc.emd2(a, b, C)
    value.backward()
    plan = otc.emd(a.detach(), b, C.detach())
    torch.testing.assert_close(C.grad, plan)
    dual = otc.solve(C.detach(), a.detach(), b).f
    torch.testing.assert_close(a.grad, dual - dual.mean())


def test_emd_on_points_gradient_matches_finite_differences():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(8, 2, dtype=torch.float64, generator=g, requires_grad=True)
    y = torch.randn(8, 2, dtype=torch.float64, generator=g)
    otc.solve_sample(x, y, cost="euclidean").value.backward()
    h, i, k = 1e-6, 3, 1
    e = torch.zeros_like(x)
    e[i, k] = h
    fd = (otc.solve_sample(x.detach() + e, y, cost="euclidean").value
          - otc.solve_sample(x.detach() - e, y, cost="euclidean").value) / (2 * h)
    torch.testing.assert_close(x.grad[i, k], fd, rtol=1e-5, atol=1e-8)


def test_emd_blockwise_keeps_labels_apart():
    g = torch.Generator().manual_seed(2)
    C = torch.rand(6, 6, dtype=torch.float64, generator=g)
    la = torch.tensor([0, 0, 0, 1, 1, 1])
    lb = torch.tensor([1, 0, 1, 0, 1, 0])
    P = otc.emd_blockwise(C, None, None, la, lb)
    assert float(P[la[:, None] != lb[None, :]].abs().max()) == 0.0
    inf_cost = torch.where(la[:, None] == lb[None, :], C, torch.full_like(C, 1e6))
    torch.testing.assert_close((P * C).sum(), (otc.emd(None, None, inf_cost) * C).sum(), rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match="equal per-label masses"):
        otc.emd_blockwise(C, None, None, la, torch.tensor([0, 0, 0, 0, 1, 1]))


@pytest.mark.parametrize("gamma", [0.1, 1.0])
def test_l2_regularised_matches_pot_smooth(gamma):  # T10
    _, _, C, a, b = cloud_problem(30, 25, seed=7)
    res = otc.solve(C, a, b, reg=gamma, reg_type="l2", tol=1e-12, max_iter=5000)
    P, log = ot.smooth.smooth_ot_dual(a.numpy(), b.numpy(), C.numpy(), gamma, reg_type="l2", stopThr=1e-12,
                                      numItermax=5000, log=True)
    P = torch.from_numpy(P)
    # POT's L-BFGS-B stops with marginal errors ~5e-5 here; ours reaches ~1e-6 and a higher dual value
    torch.testing.assert_close(res.plan, P, atol=1e-4, rtol=0)
    r, c = res.marginals
    assert float((r - a).abs().sum() + (c - b).abs().sum()) < 1e-5
    alpha, beta = torch.from_numpy(log["alpha"]), torch.from_numpy(log["beta"])
    pot_dual = (alpha * a).sum() + (beta * b).sum() - ((alpha[:, None] + beta - C).clamp_min(0) ** 2).sum() / (2 * gamma)
    assert float(res.extra["dual_value"][0]) >= float(pot_dual) - 1e-12
    primal = (res.plan * C).sum() + 0.5 * gamma * (res.plan**2).sum()
    torch.testing.assert_close(res.value, primal, rtol=1e-12, atol=0)
    torch.testing.assert_close(res.value, res.extra["dual_value"][0], rtol=1e-4, atol=0)  # zero duality gap
    assert float((res.plan == 0).double().mean()) > 0.3  # the L2 plan is sparse


def test_continuous_duals_match_pot_stochastic():  # T11
    g = torch.Generator().manual_seed(8)
    xs, xt = torch.randn(12, 3, dtype=torch.float64, generator=g), torch.randn(9, 3, dtype=torch.float64, generator=g)
    u, v = torch.randn(12, dtype=torch.float64, generator=g), torch.randn(9, dtype=torch.float64, generator=g)
    C = torch.cdist(xs, xt) ** 2
    for eps in (0.1, 1.0):
        ref_l2 = ot.stochastic.loss_dual_quadratic(u, v, xs, xt, reg=eps)
        torch.testing.assert_close(-otc.neural.dual_l2_loss(u, v, C, eps), ref_l2, atol=1e-12, rtol=0)
        ref_plan = ot.stochastic.plan_dual_quadratic(u, v, xs, xt, reg=eps)
        torch.testing.assert_close(otc.neural.l2_plan_density(u, v, C, eps) / (12 * 9), ref_plan, atol=1e-12, rtol=0)
        ref_ent = ot.stochastic.loss_dual_entropic(u, v, xs, xt, reg=eps)
        torch.testing.assert_close(-otc.neural.dual_entropic_loss(u, v, C, eps), ref_ent, atol=1e-12, rtol=1e-12)


def test_fixed_support_barycenter_matches_pot():  # T12
    n = 40
    grid = torch.linspace(0, 1, n, dtype=torch.float64)
    C = (grid[:, None] - grid[None, :]) ** 2
    A = torch.stack([torch.exp(-((grid - 0.25) ** 2) / 0.005), torch.exp(-((grid - 0.7) ** 2) / 0.01)], 1)
    A = A / A.sum(0)
    w = torch.tensor([0.3, 0.7], dtype=torch.float64)
    ours = otc.barycenter_fixed(A, C, 0.002, w, tol=1e-12, max_iter=100_000)
    ref = ot.bregman.barycenter(A.numpy(), C.numpy(), 0.002, w.numpy(), method="sinkhorn_log", stopThr=1e-12,
                                numItermax=100_000)
    assert ours.converged
    torch.testing.assert_close(ours.barycenter, torch.from_numpy(ref), rtol=1e-5, atol=1e-10)


def test_free_support_barycenter_matches_pot():  # T13
    g = torch.Generator().manual_seed(9)
    locs = [torch.randn(20, 2, dtype=torch.float64, generator=g) + shift for shift in (0.0, 3.0)]
    X0 = torch.randn(10, 2, dtype=torch.float64, generator=g)
    ours = otc.barycenter_free(locs, x_init=X0, tol=1e-9, max_iter=1000)
    ref = ot.lp.free_support_barycenter([p.numpy() for p in locs], [np.full(20, 1 / 20)] * 2, X0.numpy(),
                                        stopThr=1e-9, numItermax=1000)
    torch.testing.assert_close(ours.barycenter, torch.from_numpy(ref), atol=1e-6, rtol=0)
