"""Neural-OT losses and the exact simplex-ball reweighting (ARPM) against brute force and SLSQP."""

import itertools

import numpy as np
import pytest
import scipy.optimize
import torch

import ot_core as otc
from ot_core.neural import (
    barycenter_weights,
    center_potentials,
    congruence_penalty,
    critic_loss,
    gradient_penalty,
    reweight_simplex_ball,
    semidual_map_loss,
    source_importance_weights,
)


def brute_force(d: np.ndarray, rho: float) -> float:
    """min <d, w> over every support S: the KKT point with the ball active, and the uniform point on S."""
    n = len(d)
    best = np.inf
    for k in range(1, n + 1):
        for S in itertools.combinations(range(n), k):
            S = list(S)
            dS = d[S]
            cands = [np.full(k, n / k)]
            V = ((dS - dS.mean()) ** 2).sum()
            room = rho * n - n * (n - k) / k
            if V > 0 and room > 0:
                lam = np.sqrt(V) / (2 * np.sqrt(room))
                cands.append(n / k + (dS.mean() - dS) / (2 * lam))
            for wS in cands:
                w = np.zeros(n)
                w[S] = wS
                if (w >= -1e-12).all() and ((w - 1) ** 2).sum() <= rho * n + 1e-9:
                    best = min(best, float(d @ w))
    return best


@pytest.mark.parametrize("n,rho,seed", [(5, 0.5, 0), (6, 2.0, 1), (7, 0.2, 2), (8, 5.0, 3), (8, 1.0, 4)])
def test_reweight_is_optimal_against_brute_force(n, rho, seed):
    d = np.random.default_rng(seed).normal(size=n)
    w = reweight_simplex_ball(torch.from_numpy(d), rho=rho).numpy()
    assert (w >= -1e-12).all() and abs(w.sum() - n) < 1e-9 and ((w - 1) ** 2).sum() <= rho * n + 1e-9
    assert d @ w <= brute_force(d, rho) + 1e-10


@pytest.mark.parametrize("n", [5, 17, 60])
@pytest.mark.parametrize("rho", [0.3, 5.0])
def test_reweight_matches_slsqp(n, rho):
    d = np.random.default_rng(n).normal(size=n) ** 3
    w = reweight_simplex_ball(torch.from_numpy(d), rho=rho).numpy()
    cons = [{"type": "eq", "fun": lambda v: v.sum() - n}, {"type": "ineq", "fun": lambda v: rho * n - ((v - 1) ** 2).sum()}]
    ref = scipy.optimize.minimize(lambda v: d @ v, np.ones(n), jac=lambda v: d, method="SLSQP", bounds=[(0, None)] * n,
                                  constraints=cons, options={"ftol": 1e-14, "maxiter": 1000})
    assert d @ w <= ref.fun + 1e-7 * n


def test_reweight_kkt_certificate_invariances_and_limits():
    d = torch.from_numpy(np.random.default_rng(7).normal(size=200))
    w = reweight_simplex_ball(d, rho=1.0)
    support = w > 0
    # KKT: w = max(0, c - d / (2 lambda)) for one pair (c, lambda)
    A = torch.stack([torch.ones(int(support.sum()), dtype=d.dtype), -d[support] / 2], 1)
    (c, inv_lam), *_ = torch.linalg.lstsq(A, w[support].unsqueeze(1))
    torch.testing.assert_close(torch.clamp(c - d * inv_lam / 2, min=0), w, atol=1e-10, rtol=0)
    assert int(support.sum()) >= 200 / (1 + 1.0)
    torch.testing.assert_close(reweight_simplex_ball(3 * d + 7, rho=1.0), w, atol=1e-10, rtol=0)
    perm = torch.randperm(200, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(reweight_simplex_ball(d[perm], rho=1.0), w[perm], atol=1e-10, rtol=0)
    torch.testing.assert_close(reweight_simplex_ball(torch.full((9,), 2.5), rho=1.0), torch.ones(9, dtype=torch.float32))
    vertex = reweight_simplex_ball(torch.tensor([3.0, 1.0, 2.0]), rho=10.0)  # rho >= n - 1: the argmin vertex
    torch.testing.assert_close(vertex, torch.tensor([0.0, 3.0, 0.0]))
    assert float((reweight_simplex_ball(d, rho=1e-8) - 1).abs().max()) < 1e-3
    torch.testing.assert_close(reweight_simplex_ball(torch.tensor([4.0]), rho=5.0), torch.tensor([1.0]))


def test_reweight_partial_pair_downweights_the_private_class():  # E8
    x, _, lx, _ = otc.datasets.partial_pair()
    # a critic that scores the private class (away from the target) highest
    critic_values = -((x - x[lx != 2].mean(0)) ** 2).sum(1)
    w = reweight_simplex_ball(-critic_values, rho=5.0)
    assert float(w[lx == 2].abs().max()) == 0.0  # the private class is dropped entirely
    torch.testing.assert_close(w[lx != 2].sum(), torch.tensor(float(len(x)), dtype=w.dtype))


def test_reweight_chunked_faithful_mode_zeroes_the_tail():
    d = torch.randn(45, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    w = reweight_simplex_ball(d, rho=5.0, chunk_size=20)
    # 45 // 20 = 2 interleaved chunks of 45 // 2 = 22 points: index 44 is left out with weight 0
    assert float(w[44]) == 0.0
    torch.testing.assert_close(w[0:44:2], reweight_simplex_ball(d[0:44:2], rho=5.0))
    torch.testing.assert_close(w[1:44:2], reweight_simplex_ball(d[1:44:2], rho=5.0))


def test_critic_gradient_penalty_and_map_losses():
    critic = torch.nn.Linear(3, 1).double()
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[3.0, 0.0, 4.0]]))
    real = torch.randn(16, 3, dtype=torch.float64)
    fake = torch.randn(16, 3, dtype=torch.float64)
    # a linear critic has gradient norm 5 everywhere: penalty = weight * (5 - 1)^2
    with torch.no_grad():
        gp = gradient_penalty(critic, real, fake, weight=10.0, generator=torch.Generator().manual_seed(0))
        assert not torch.is_grad_enabled()  # the caller's grad mode is restored
    torch.testing.assert_close(gp, torch.tensor(160.0, dtype=torch.float64))
    gp = gradient_penalty(critic, real, fake)
    gp.backward()
    assert critic.weight.grad is not None and float(critic.weight.grad.abs().sum()) > 0
    f_real, f_fake = critic(real).squeeze(1), critic(fake).squeeze(1)
    torch.testing.assert_close(critic_loss(f_real, f_fake), f_fake.mean() - f_real.mean())
    cost = torch.rand(16, dtype=torch.float64)
    torch.testing.assert_close(semidual_map_loss(f_fake, cost, sigma=0.5), (0.5 * cost - f_fake).mean())


def test_barycenter_helpers():
    f = torch.randn(10, 3, dtype=torch.float64)
    lam = barycenter_weights(counts=[100, 200, 400], mode="inverse_count")
    torch.testing.assert_close(lam, torch.tensor([4.0, 2.0, 1.0], dtype=torch.float64) / 7)
    assert float((center_potentials(f, lam) @ lam).abs().max()) < 1e-15
    torch.testing.assert_close(congruence_penalty(f, lam, weight=10.0), 10 * ((f @ lam) ** 2).mean())
    torch.testing.assert_close(congruence_penalty(f, lam, reduction="last"), 10 * (f[-1] @ lam) ** 2)
    labels = torch.tensor([0, 1, 1, 2])
    w = source_importance_weights(labels, lam, torch.tensor([0.5, 0.25, 0.25]))
    torch.testing.assert_close(w, lam[labels] / torch.tensor([0.5, 0.25, 0.25, 0.25], dtype=torch.float64))
    with pytest.raises(ValueError, match="inverse_count"):
        barycenter_weights(3, mode="inverse_count")
