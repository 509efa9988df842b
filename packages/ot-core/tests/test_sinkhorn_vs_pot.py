"""Entropic OT against POT 0.9.7 in float64 (spec table T1-T6, T16): balanced, unbalanced, semi-relaxed, batched."""

import math

import numpy as np
import ot
import pytest
import torch

import ot_core as otc

SIZES = [(1, 5), (5, 1), (5, 64), (64, 64), (257, 64)]
REGS = [1.0, 0.1, 0.01]


def problem(n, m, seed, d=2, zero=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, dtype=torch.float64, generator=g)
    y = torch.randn(m, d, dtype=torch.float64, generator=g)
    a = torch.distributions.Dirichlet(torch.ones(n, dtype=torch.float64)).sample() if n > 1 else torch.ones(1).double()
    b = torch.distributions.Dirichlet(torch.ones(m, dtype=torch.float64)).sample() if m > 1 else torch.ones(1).double()
    if zero and n > 2:
        a[[0, 2]] = 0
        a /= a.sum()
    C = torch.cdist(x, y) ** 2
    C = C / C.max().clamp_min(1e-300)
    return C, a, b


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.mark.parametrize("n,m", SIZES)
@pytest.mark.parametrize("reg", REGS)
def test_balanced_plan_potentials_values(n, m, reg):
    C, a, b = problem(n, m, seed=n * 1000 + m)
    res = otc.solve(C, a, b, reg=reg, tol=1e-12, max_iter=100_000)
    P = ot.sinkhorn(a.numpy(), b.numpy(), C.numpy(), reg, method="sinkhorn_log", stopThr=1e-13, numItermax=100_000)
    P = torch.from_numpy(P)
    assert res.converged
    torch.testing.assert_close(res.plan, P, atol=1e-10, rtol=1e-7)  # T1
    r, c = res.marginals
    assert float((r - a).abs().sum() + (c - b).abs().sum()) < 1e-9
    pot = ot.solve(C, a, b, reg=reg, tol=1e-13, max_iter=100_000)  # T2, T3
    log_u, log_v = pot.potentials
    df = res.f - reg * (log_u - torch.log(a))
    assert float((df - df.mean()).abs().max()) < 1e-7
    torch.testing.assert_close(res.value, pot.value, rtol=1e-8, atol=1e-12)
    torch.testing.assert_close(res.value_linear, pot.value_linear, rtol=1e-8, atol=1e-12)
    torch.testing.assert_close(otc.sinkhorn2(a, b, C, reg, tol=1e-12, max_iter=100_000),
                               torch.as_tensor(ot.sinkhorn2(a, b, C, reg, method="sinkhorn_log", stopThr=1e-13,
                                                            numItermax=100_000)), rtol=1e-8, atol=1e-12)
    # POT's log-scalings are ours up to the free constant: pi = exp(log_u + log_v - C / reg)
    lu, lv = res.to_pot()
    torch.testing.assert_close(torch.exp(lu[:, None] + lv[None, :] - C / reg), P, atol=1e-10, rtol=1e-7)


@pytest.mark.parametrize("reg", [0.1, 0.01])
def test_zero_weights_give_zero_rows_and_finite_potentials(reg):
    C, a, b = problem(64, 40, seed=3, zero=True)
    res = otc.solve(C, a, b, reg=reg, tol=1e-12, max_iter=100_000)
    P = torch.from_numpy(ot.sinkhorn(a.numpy(), b.numpy(), C.numpy(), reg, method="sinkhorn_log", stopThr=1e-13,
                                     numItermax=100_000))
    assert torch.isfinite(res.f).all() and torch.isfinite(res.g).all() and torch.isfinite(res.value)
    assert float(res.plan[[0, 2]].abs().max()) == 0.0
    torch.testing.assert_close(res.plan, P, atol=1e-10, rtol=1e-7)


@pytest.mark.parametrize("reg", [0.1, 0.01])
def test_float32_matches_float64_reference(reg):  # T4
    C, a, b = problem(64, 48, seed=7)
    res = otc.solve(C.float(), a.float(), b.float(), reg=reg, tol=1e-6, max_iter=100_000)
    P = ot.sinkhorn(a.numpy(), b.numpy(), C.numpy(), reg, method="sinkhorn_log", stopThr=1e-13, numItermax=100_000)
    assert res.plan.dtype == torch.float32
    torch.testing.assert_close(res.plan.double(), torch.from_numpy(P), atol=1e-6, rtol=0)
    pot = ot.solve(C, a, b, reg=reg, tol=1e-13, max_iter=100_000)
    torch.testing.assert_close(res.value.double(), pot.value, rtol=1e-4, atol=1e-7)


def unbalanced_problem(n, m, seed):
    g = torch.Generator().manual_seed(seed)
    C, _, _ = problem(n, m, seed)
    a = torch.rand(n, dtype=torch.float64, generator=g) + 0.5
    b = torch.rand(m, dtype=torch.float64, generator=g) + 0.5
    return C, a, b


@pytest.mark.parametrize("n,m", [(5, 64), (64, 64), (257, 64)])
@pytest.mark.parametrize("reg", [1.0, 0.1, 0.01])
@pytest.mark.parametrize("rho", [(1.0, 1.0), (0.5, 2.0)])
def test_unbalanced_plan_and_values(n, m, reg, rho):  # T5
    C, a, b = unbalanced_problem(n, m, seed=11)
    res = otc.solve(C, a, b, reg=reg, unbalanced=rho, tol=1e-13, max_iter=100_000)
    P = ot.unbalanced.sinkhorn_unbalanced(a.numpy(), b.numpy(), C.numpy(), reg, reg_m=rho, reg_type="kl",
                                          stopThr=1e-14, numItermax=100_000)
    P = torch.from_numpy(P)
    torch.testing.assert_close(res.plan, P, rtol=1e-6, atol=1e-12)
    torch.testing.assert_close(res.value_linear, (P * C).sum(), rtol=1e-6, atol=1e-12)
    # value = generalised-KL primal of our plan = dual value D(f, g)
    pi, r, c = res.plan, res.plan.sum(1), res.plan.sum(0)

    def kl(p, q):
        return (torch.where(p > 0, p * torch.log(p / q), torch.zeros_like(p)) - p + q).sum()

    primal = (pi * C).sum() + reg * kl(pi, a[:, None] * b[None]) + rho[0] * kl(r, a) + rho[1] * kl(c, b)
    torch.testing.assert_close(res.value, primal, rtol=1e-9, atol=1e-12)
    # POT's "total" omits the mass terms: reproduced only with value_convention="pot"
    pot_total = ot.unbalanced.sinkhorn_unbalanced2(a.numpy(), b.numpy(), C.numpy(), reg, reg_m=rho, reg_type="kl",
                                                   stopThr=1e-14, numItermax=100_000, returnCost="total")
    res_pot = otc.solve(C, a, b, reg=reg, unbalanced=rho, tol=1e-13, max_iter=100_000, value_convention="pot")
    torch.testing.assert_close(res_pot.value, torch.as_tensor(float(pot_total), dtype=torch.float64), rtol=1e-6,
                               atol=1e-10)


@pytest.mark.parametrize("reg", [0.1, 0.01])
@pytest.mark.parametrize("method", ["sinkhorn", "semidual"])
def test_semi_relaxed_exact_columns(reg, method):  # T6
    C, _, _ = problem(64, 48, seed=5)
    a, b = torch.ones(64, dtype=torch.float64), torch.ones(48, dtype=torch.float64)
    res = otc.solve(C, a, b, reg=reg, unbalanced=(10.0, math.inf), tol=1e-12, max_iter=100_000, method=method)
    P = torch.from_numpy(ot.unbalanced.sinkhorn_unbalanced(a.numpy(), b.numpy(), C.numpy(), reg,
                                                           reg_m=[10.0, math.inf], reg_type="kl", stopThr=1e-14,
                                                           numItermax=100_000))
    assert res.converged
    torch.testing.assert_close(res.plan.sum(0), b, rtol=1e-9, atol=0)
    torch.testing.assert_close(res.plan, P, rtol=1e-6, atol=1e-12)


def test_hard_rows_relaxed_columns_is_the_transpose():
    C, _, _ = problem(30, 20, seed=2)
    a, b = torch.ones(30, dtype=torch.float64), torch.ones(20, dtype=torch.float64) * 1.3
    res = otc.solve(C, a, b, reg=0.05, unbalanced=(math.inf, 5.0), tol=1e-12, max_iter=100_000)
    res_t = otc.solve(C.T, b, a, reg=0.05, unbalanced=(5.0, math.inf), tol=1e-12, max_iter=100_000)
    torch.testing.assert_close(res.plan.sum(1), a, rtol=1e-9, atol=0)
    torch.testing.assert_close(res.plan, res_t.plan.T, rtol=1e-8, atol=1e-14)


def test_batched_matches_pot_batch_and_one_by_one():  # T16
    g = torch.Generator().manual_seed(0)
    B, n, m = 4, 20, 15
    M = torch.rand(B, n, m, dtype=torch.float64, generator=g)
    a = torch.distributions.Dirichlet(torch.ones(B, n, dtype=torch.float64)).sample()
    b = torch.distributions.Dirichlet(torch.ones(B, m, dtype=torch.float64)).sample()
    res = otc.solve(M, a, b, reg=0.05, tol=1e-12, max_iter=100_000)
    ref = ot.batch.solve_batch(M, 0.05, a, b, method="log_sinkhorn", reg_type="kl", tol=1e-10, max_iter=100_000)
    torch.testing.assert_close(res.plan, ref.plan, rtol=1e-6, atol=1e-12)
    torch.testing.assert_close(res.value, ref.value, rtol=1e-8, atol=1e-12)
    for k in range(B):
        single = otc.solve(M[k], a[k], b[k], reg=0.05, tol=1e-12, max_iter=100_000)
        torch.testing.assert_close(res.plan[k], single.plan, rtol=1e-9, atol=1e-14)
        torch.testing.assert_close(res.value[k], single.value, rtol=1e-10, atol=1e-14)


def test_eps_schedule_and_symmetric_updates_reach_the_same_optimum():
    C, a, b = problem(64, 64, seed=9)
    ref = otc.solve(C, a, b, reg=0.01, tol=1e-12, max_iter=100_000)
    for kw in ({"eps_schedule": "scaling"}, {"updates": "symmetric"}, {"init": (ref.f, ref.g)}):
        res = otc.solve(C, a, b, reg=0.01, tol=1e-12, max_iter=100_000, **kw)
        torch.testing.assert_close(res.plan, ref.plan, rtol=1e-6, atol=1e-11)
    warm = otc.solve(C, a, b, reg=0.01, tol=1e-12, max_iter=100_000, init=(ref.f, ref.g))
    assert warm.n_iter < ref.n_iter / 10


def test_scale_cost_and_reg_scale():
    C, a, b = problem(40, 30, seed=4)
    C = 7.0 * C
    scaled = otc.solve(C, a, b, reg=0.05, scale_cost="max", tol=1e-12, max_iter=100_000)
    direct = otc.solve(C / C.max(), a, b, reg=0.05, tol=1e-12, max_iter=100_000)
    torch.testing.assert_close(scaled.plan, direct.plan, rtol=1e-8, atol=1e-14)
    torch.testing.assert_close(scaled.value, direct.value, rtol=1e-9, atol=0)
    torch.testing.assert_close(scaled.f, direct.f, rtol=1e-8, atol=1e-12)
    relative = otc.solve(C, a, b, reg=0.05, reg_scale="max", tol=1e-12, max_iter=100_000)
    absolute = otc.solve(C, a, b, reg=0.05 * float(C.max()), tol=1e-12, max_iter=100_000)
    torch.testing.assert_close(relative.plan, absolute.plan, rtol=1e-8, atol=1e-14)


def test_growth_pair_semi_relaxed_growth_is_one_and_two():  # E6
    x, y, growth = otc.datasets.growth_pair(sep=4.0)
    ones_x, ones_y = torch.ones(len(x), dtype=torch.float64), torch.ones(len(y), dtype=torch.float64)
    for rho in (1.0, 10.0):
        res = otc.solve_sample(x, y, ones_x, ones_y, reg=0.05, unbalanced=(rho, math.inf), tol=1e-10,
                               max_iter=20_000, method="semidual")
        factor = res.lazy_plan.row_sums()
        half = len(x) // 2
        assert abs(float(factor[:half].mean()) - 1.0) < 0.01
        assert abs(float(factor[half:].mean()) - 2.0) < 0.01
        assert abs(float(factor.mean()) - len(y) / len(x)) < 1e-8


def test_prior_matches_pot_with_a_separate_entropy_reference():
    # ours: KL(pi 1 | a G) with entropy reference a b^T; POT: marginal a' = a G with reference c = a b^T
    C, a, b = unbalanced_problem(40, 30, seed=8)
    G = torch.linspace(0.5, 2.0, 40, dtype=torch.float64)
    res = otc.solve(C, a, b, reg=0.05, unbalanced=(0.7, math.inf), prior=(G, None), tol=1e-13, max_iter=100_000)
    P = ot.unbalanced.sinkhorn_unbalanced((a * G).numpy(), b.numpy(), C.numpy(), 0.05, reg_m=[0.7, math.inf],
                                          c=(a[:, None] * b[None]).numpy(), reg_type="kl", stopThr=1e-15,
                                          numItermax=100_000)
    torch.testing.assert_close(res.plan, torch.from_numpy(P), rtol=1e-6, atol=1e-13)
    r = res.lazy_plan.row_sums()  # optimality on the relaxed side: r = a G exp(-f / rho)
    torch.testing.assert_close(r, a * G * torch.exp(-res.f / 0.7), rtol=1e-8, atol=1e-12)


@pytest.mark.filterwarnings("ignore:OT solver stopped")
def test_real_data_semi_relaxed_mass_ratio(shared_data):  # E6 on simulation_gene_data
    data = np.loadtxt(shared_data / "cells" / "simulation_gene_data.csv", delimiter=",", skiprows=1)
    t, coords = data[:, 0], torch.from_numpy(data[:, 1:3])  # header: samples, x1, x2
    times = np.unique(t)
    x, y = coords[t == times[0]], coords[t == times[1]]
    res = otc.solve_sample(x, y, torch.ones(len(x), dtype=torch.float64), torch.ones(len(y), dtype=torch.float64),
                           reg=0.003, unbalanced=(10.0, math.inf), tol=1e-6, max_iter=300)
    assert abs(float(res.lazy_plan.row_sums().mean()) - len(y) / len(x)) < 1e-6
