"""Stage-1 batches (interpolation end points, targets), the weighted ODE, stage 2's gradients, and metrics."""

import math

import numpy as np
import ot
import pytest
import torch

import ot_cells as oc
from ot_cells.config import VGFMConfig
from ot_cells.flow_matching import sample_batch
from ot_cells.metrics import relative_mass_error, w1
from ot_cells.nets import GrowthNet, VelocityNet
from ot_cells.ode import WeightedField, integrate
from ot_cells.refine import refine_epoch


def _nearest(points, cloud):
    """(index, distance) of each point's nearest cloud row, computed exactly (no matrix-product shortcut)."""
    d = torch.cdist(points.double(), cloud.double(), compute_mode="donot_use_mm_for_euclid_dist")
    return d.min(1)


@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_batch_endpoints_and_targets(adata, direction):
    vg = oc.VGFM(adata, rep="X_emb", config={"epsilon": 0.05, "sigma": 0.0, "interpolation": direction})
    iv = vg.compute_couplings()[2]  # t = 1.5 -> 2: dt = 0.5
    cfg = vg.config.replace(batch_size=50)
    batch = sample_batch([iv], cfg, torch.Generator().manual_seed(0))
    s = (batch.t - iv.t0) / iv.dt
    jump = batch.v * iv.dt  # y_j - x_i
    s_src = s if direction == "forward" else 1 - s
    x_i = batch.x - s_src[:, None] * jump
    y_j = x_i + jump
    d_src, d_tgt = _nearest(x_i, iv.x).values, _nearest(y_j, iv.y).values
    assert d_src.max() < 1e-9 and d_tgt.max() < 1e-9  # s = 0 / 1 ends are the paired cells (reversed if backward)
    i = _nearest(x_i, iv.x).indices
    torch.testing.assert_close(batch.g, iv.coupling.growth_target[i])
    assert iv.dt == pytest.approx(0.5)


def test_hold_out_couples_across_the_gap(adata):
    vg = oc.VGFM(adata, rep="X_emb", hold_out=0.5, config={"epsilon": 0.05})
    first = vg.compute_couplings()[0]
    assert (first.source, first.target, first.dt) == (0, 2, 1.5)
    assert len(first.x) == len(vg.snapshots.X[0]) and len(first.y) == len(vg.snapshots.X[2])


def test_real_times_and_the_index_flag(adata):
    real = oc.VGFM(adata, rep="X_emb", config={"epsilon": 0.05})
    assert [iv.dt for iv in real.compute_couplings()] == [0.5, 1.0, 0.5]
    index = oc.VGFM(adata, rep="X_emb", config={"epsilon": 0.05, "time_mode": "index"})
    assert [iv.dt for iv in index.compute_couplings()] == [1.0, 1.0, 1.0]
    np.testing.assert_allclose(index.to_model_time([0.5, 1.0, 2.0]), [1.0, 1.5, 3.0])
    torch.testing.assert_close(index.intervals[1].coupling.growth_target, real.intervals[1].coupling.growth_target)


def _constant_field(rate: float, dim: int = 2) -> WeightedField:
    velocity, growth = VelocityNet(dim, 8, 1), GrowthNet(dim, 8)
    for net in (velocity.net, growth.net):
        torch.nn.init.zeros_(net[-1].weight)
        torch.nn.init.zeros_(net[-1].bias)
    torch.nn.init.constant_(growth.net[-1].bias, rate)
    return WeightedField(velocity, growth, 0.0, 1.0)


@pytest.mark.parametrize("method,step,tol", [("dopri5", None, 1e-6), ("euler", 0.1, 1e-6), ("rk4", 0.05, 1e-6)])
def test_constant_growth_and_zero_velocity(method, step, tol):
    field = _constant_field(0.7)
    x = torch.randn(6, 2)
    with torch.no_grad():
        xs, lws = integrate(field, x, torch.full((6,), math.log(1 / 6)), [0.0, 0.5, 2.0], method=method, step=step)
        back_x, back_lw = integrate(field, x, torch.zeros(6), [2.0, 0.0], method=method, step=step)  # backward
    mass = lws.double().exp().sum(1)
    np.testing.assert_allclose(mass.numpy(), np.exp(0.7 * np.array([0.0, 0.5, 2.0])), rtol=tol)
    torch.testing.assert_close(xs[-1], x)
    np.testing.assert_allclose(back_lw[-1].numpy(), -1.4, rtol=1e-5)


@pytest.mark.parametrize("weight,expect_grad", [(0.0, False), (1.0, True)])
def test_refinement_trains_growth_only_with_a_mass_penalty(adata, weight, expect_grad):
    vg = oc.VGFM(adata, rep="X_emb", config={"epsilon": 0.05, "hidden": 8, "n_hidden": 1})
    field = vg._build_field()
    cfg = vg.config.replace(refine_mass_weight=weight)
    opt = torch.optim.SGD(field.parameters(), lr=0.0)
    intervals = vg.compute_couplings()
    refine_epoch(field, intervals[0].x, intervals, [1.1, 1.2, 1.3], cfg, opt, torch.Generator().manual_seed(0))
    g_grad = sum(float(p.grad.abs().sum()) for p in field.growth.parameters() if p.grad is not None)
    v_grad = sum(float(p.grad.abs().sum()) for p in field.velocity.parameters())
    assert v_grad > 0
    assert (g_grad > 0) == expect_grad


def test_mass_penalty_leaves_the_velocity_gradient_unchanged(adata):
    grads = []
    for weight in (0.0, 5.0):
        vg = oc.VGFM(adata, rep="X_emb", config={"epsilon": 0.05, "hidden": 8, "n_hidden": 1,
                                                 "refine_mass_weight": weight})
        field = vg._build_field()
        intervals = vg.compute_couplings()
        refine_epoch(field, intervals[0].x, intervals, [1.1, 1.2, 1.3], vg.config,
                     torch.optim.SGD(field.parameters(), lr=0.0), torch.Generator().manual_seed(0))
        grads.append(torch.cat([p.grad.flatten() for p in field.velocity.parameters()]))
    torch.testing.assert_close(grads[0], grads[1])


def test_w1_matches_pot_and_rme():
    gen = np.random.default_rng(0)
    x, y, w = gen.normal(size=(20, 3)), gen.normal(size=(30, 3)) + 0.5, gen.random(20)
    ref = ot.emd2(w / w.sum(), np.ones(30) / 30, ot.dist(x, y, metric="euclidean"))
    assert w1(x, y, w) == pytest.approx(ref, rel=1e-9)
    assert w1(y, y) == pytest.approx(0.0, abs=1e-8)
    assert relative_mass_error(1.1, 1.0) == pytest.approx(0.1)
    assert relative_mass_error(0.5, 2.0) == pytest.approx(0.75)


def test_config_presets():
    assert VGFMConfig.preset("simulation_gene").epsilon == 0.003
    assert VGFMConfig.preset("small", steps=7).steps == 7
    with pytest.raises(ValueError, match="unknown preset"):
        VGFMConfig.preset("nope")


def test_checkpoint_selection_scores_the_stage2_loss(adata):
    records = [{"w1": 0.1, "mass_pred": 1.0, "mass_obs": 1.0}, {"w1": 0.2, "mass_pred": math.e, "mass_obs": 1.0}]
    vg = oc.VGFM(adata, rep="X_emb", config={"select": "mean", "refine_mass_weight": 0.5})
    assert vg._selection_score(records) == pytest.approx((0.1 + 0.2 + 0.5) / 2)
    vg.config = vg.config.replace(select="last", refine_mass_weight=0.0)
    assert vg._selection_score(records) == pytest.approx(0.2)
