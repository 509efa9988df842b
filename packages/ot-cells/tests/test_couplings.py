"""SROT couplings against POT and their own optimality conditions; growth targets; the pair sampler."""

import math

import numpy as np
import ot
import pytest
import torch

from ot_cells.couplings import exact_coupling, select_reg_m, srot_coupling


@pytest.fixture(scope="module")
def clouds():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(30, 2, generator=gen, dtype=torch.float64)
    y = torch.randn(40, 2, generator=gen, dtype=torch.float64) * 1.3 + torch.tensor([1.0, 0.0], dtype=torch.float64)
    return x, y


def test_srot_marginals_and_optimality(clouds):
    x, y = clouds
    masses = (1.0, 1.6)  # 30 cells grow into a population 1.6 times larger, observed through 40 cells
    c = srot_coupling(x, y, 1.0, masses, n0=30, epsilon=0.05, reg_m=2.0, scale_cost="max")
    plan = c.result.plan
    b = torch.full((40,), 1.6 * 30 / 40, dtype=torch.float64)
    assert torch.allclose(plan.sum(0), b, rtol=0, atol=1e-8)  # hard target marginal
    assert float(plan.sum()) == pytest.approx(1.6 * 30, rel=1e-10)
    assert float(c.mass_factor.mean()) == pytest.approx(1.6, rel=1e-10)
    assert c.stats["converged"] and c.stats["residual"] < 1e-6
    # the relaxed side at the optimum: m_i = a_i exp(-f_i / lam)
    assert torch.allclose(c.row_mass, c.a * torch.exp(-c.result.f / 2.0), rtol=1e-6)


@pytest.mark.parametrize("solver", ["semidual", "scaling"])
def test_srot_matches_pot(clouds, solver):
    x, y = clouds
    eps, lam = 0.1, 1.5
    C = ot.dist(x.numpy(), y.numpy())
    C /= C.max()
    ref = ot.unbalanced.sinkhorn_unbalanced(np.ones(30), np.ones(40), C, eps, [lam, np.inf], reg_type="kl",
                                            numItermax=100000, stopThr=1e-12)
    c = srot_coupling(x, y, 1.0, (1.0, 40 / 30), n0=30, epsilon=eps, reg_m=lam, scale_cost="max", solver=solver,
                      tol=1e-8, max_iter=100000)
    np.testing.assert_allclose(c.result.plan.numpy(), ref, rtol=1e-6, atol=1e-12)


def test_prior_one_is_no_prior_and_prior_moves_mass(clouds):
    x, y = clouds
    kw = dict(epsilon=0.05, reg_m=1.0, scale_cost="max")
    base = srot_coupling(x, y, 1.0, (1.0, 1.3), **kw)
    ones = srot_coupling(x, y, 1.0, (1.0, 1.3), prior=torch.ones(30, dtype=torch.float64), **kw)
    torch.testing.assert_close(ones.row_mass, base.row_mass, rtol=1e-9, atol=1e-12)
    favoured = torch.ones(30, dtype=torch.float64)
    favoured[:10] = 3.0
    tilted = srot_coupling(x, y, 1.0, (1.0, 1.3), prior=favoured, **kw)
    assert float(tilted.mass_factor[:10].mean()) > float(base.mass_factor[:10].mean()) + 0.1
    with pytest.raises(ValueError, match="growth prior"):
        srot_coupling(x, y, 1.0, (1.0, 1.3), prior=-favoured, **kw)


def test_growth_target_is_log_row_mass_over_dt(clouds):
    x, y = clouds
    c = srot_coupling(x, y, 2.5, (2.0, 3.0), n0=30, epsilon=0.05, reg_m=1.0)
    a = 2.0  # per-cell mass M_k n0 / n_k
    expected = torch.log(c.result.plan.sum(1) / a) / 2.5
    torch.testing.assert_close(c.growth_target, expected, rtol=1e-10, atol=1e-12)
    assert float(c.growth_target.mean()) != pytest.approx(0.0, abs=1e-3)


def test_exact_coupling_is_balanced_with_uniform_factor(clouds):
    x, y = clouds
    c = exact_coupling(x, y, 1.0, (1.0, 1.25), n0=30)
    plan = c.result.plan
    torch.testing.assert_close(plan.sum(1), c.a, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(plan.sum(0), c.b, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(c.mass_factor, torch.full((30,), 1.25, dtype=torch.float64))
    assert float(ot.emd2(np.ones(30) / 30, np.ones(40) / 40, ot.dist(x.numpy(), y.numpy()))) == pytest.approx(
        float((plan * torch.cdist(x, y) ** 2).sum()) / 30, rel=1e-9)


def _toy_coupling():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(5, 2, generator=gen, dtype=torch.float64)
    y = torch.randn(7, 2, generator=gen, dtype=torch.float64)
    return srot_coupling(x, y, 1.0, (1.0, 1.4), n0=5, epsilon=0.5, reg_m=0.5, scale_cost="max")


def test_pair_sampler_frequencies_match_the_plan():
    c = _toy_coupling()
    plan = c.result.plan
    gen = torch.Generator().manual_seed(0)
    counts = torch.zeros(5, 7, dtype=torch.float64)
    first = torch.zeros(5, dtype=torch.float64)
    for _ in range(20000):  # batches of all 5 rows: every row once, its target ~ pi_i. / m_i
        i, j = c.sample(5, gen)
        counts.index_put_((i, j), torch.ones(5, dtype=torch.float64), accumulate=True)
        first[i[0]] += 1
    joint = plan / plan.sum(1, keepdim=True) / 5  # each row drawn once per batch
    assert float(0.5 * (counts / counts.sum() - joint).abs().sum()) < 0.01
    p = c.row_mass / c.row_mass.sum()  # the first of the successive weighted draws ~ row masses
    assert float(0.5 * (first / 20000 - p).abs().sum()) < 0.01


def test_pair_sampler_draws_distinct_sources_capped_at_n():
    c = _toy_coupling()
    i, j = c.sample(256, torch.Generator().manual_seed(1))
    assert len(i) == 5 and len(set(i.tolist())) == 5
    pairs = [tuple(sorted(c.sample(2, torch.Generator().manual_seed(s))[0].tolist())) for s in range(3000)]
    p = (c.row_mass / c.row_mass.sum()).numpy()
    expected = {(a, b): p[a] * p[b] / (1 - p[a]) + p[b] * p[a] / (1 - p[b]) for a in range(5) for b in range(a + 1, 5)}
    freq = {k: pairs.count(k) / 3000 for k in expected}
    assert 0.5 * sum(abs(freq[k] - expected[k]) for k in expected) < 0.04


def test_auto_reg_m_finds_the_elbow(clouds):
    x, y = clouds
    lam, curve = select_reg_m(x, y, 0.05, (1.0, 1.5), grid=np.logspace(-2, 1.2, 12))
    assert curve["grid"][0] < lam < curve["grid"][-1]
    assert np.all(np.diff(curve["cost"]) >= -1e-9)  # more transport as lam grows
    assert math.isfinite(lam)
