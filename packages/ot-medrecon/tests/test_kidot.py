"""The KIDOT path, its costs, the training step (gradient routing, determinism, resume) and the
Benamou–Brenier special case."""

import math

import pytest
import torch
from ot_core.testing import gaussian_w2
from ot_medrecon import KIDOT, KIDOTFlow, Measurements, kidot_path_cost
from ot_medrecon.classical import initial_image
from ot_medrecon.datasets import ellipse_phantoms, shepp_logan
from ot_medrecon.nets import ConvCritic, VelocityUNet
from ot_medrecon.physics import (
    LinearOperator,
    MultiCoilMRI,
    ParallelBeamCT,
    SingleCoilMRI,
    birdcage_maps,
    cartesian_mask,
)
from ot_medrecon.simulate import NominalMRI
from torch import nn


def _mri_data(n=8, size=32, seed=0):
    images = ellipse_phantoms(n, size, seed=seed)
    return Measurements.from_simulation(NominalMRI(size)(images, torch.Generator().manual_seed(seed)))


def _small_kidot(**kw):
    return KIDOT.from_preset("test", "mri", **kw)


def test_zero_network_path_stays_at_zero_filled_for_noise_free_mri():
    meas = _mri_data(4)
    flow = KIDOTFlow(VelocityUNet(2, (8, 16), (2,)), n_steps=5)
    path = flow(meas.y, meas.operator, return_path=True)
    for state in path:
        assert torch.allclose(state, meas.operator.start(meas.y), atol=1e-6)


def test_zero_network_ct_path_decreases_the_data_residual():
    x = shepp_logan(16)
    op = ParallelBeamCT(16, 20)
    y = op.A(x) + 0.01 * torch.randn(1, *op.measurement_shape, generator=torch.Generator().manual_seed(0))
    flow = KIDOTFlow(VelocityUNet(1, (8, 16), (2,)), n_steps=6)
    with torch.no_grad():
        residuals = [(op.A(s) - y).norm().item() for s in flow(y, op, return_path=True)]
    assert all(b <= a + 1e-6 for a, b in zip(residuals, residuals[1:]))
    assert residuals[-1] < residuals[0]


class _ConstantDrift(nn.Module):
    """G(I, t, S) = a fixed random image: a non-zero drift in every k-space entry."""

    def __init__(self, shape):
        super().__init__()
        self.value = torch.randn(shape, generator=torch.Generator().manual_seed(3))

    def forward(self, state, t, start):
        return self.value.expand_as(state)


def test_null_space_path_keeps_the_measured_kspace_and_moves_the_rest():
    meas = _mri_data(3)
    start = meas.operator.start(meas.y)
    for null_space in (False, True):
        flow = KIDOTFlow(_ConstantDrift((1, 2, 32, 32)), n_steps=3, null_space=null_space)
        with torch.no_grad():
            out = flow(meas.y, meas.operator)
        kept = torch.allclose(meas.operator.A(out), meas.y, atol=1e-5)
        assert kept == null_space  # the plain path moves the measured samples too
        assert float((out - start).norm()) > 1.0  # both fill the unmeasured k-space
    multi = MultiCoilMRI(meas.operator.mask[:1], birdcage_maps(4, 32))
    with pytest.raises(ValueError, match="null_space"):
        flow(torch.zeros(1, *multi.measurement_shape), multi)


@pytest.mark.parametrize(("cost_split", "expected_calls"), [(0.0, [6]), (0.3, [2, 2, 2])])
def test_fit_computes_the_tv_starts_of_a_fixed_pool_once(cost_split, expected_calls):
    meas, model = _mri_data(6), _small_kidot(start="tv", null_space=True, cost_split=cost_split)
    compute, calls = model.flow.initial_state, []
    model.flow.initial_state = lambda y, operator: calls.append(len(y)) or compute(y, operator)
    step = model.train_step

    def checked_step(batch):  # a cached start is the TV image of the batch's own measurements
        if "start" in batch:
            assert torch.allclose(batch["start"], compute(batch["meas"].y, batch["meas"].operator), atol=1e-6)
        return step(batch)

    model.train_step = checked_step
    model.fit(meas, meas.gt, n_iter=3, batch_size=2, progress=False)
    assert calls == expected_calls  # once for the pool; with a split the path's input changes every draw


@pytest.mark.parametrize("start", ["tv", "phase_tv"])
def test_tv_start_path_begins_at_the_tv_reconstruction(start):
    meas = _mri_data(3)
    flow = KIDOTFlow(VelocityUNet(2, (8, 16), (2,)), n_steps=3, null_space=True, start=start)  # zero drift at init
    with torch.no_grad():
        path = flow(meas.y, meas.operator, return_path=True)
    origin = initial_image(meas.y, meas.operator, start)
    consistent = origin - meas.operator.normal(origin) + meas.operator.start(meas.y)  # measured k-space := y
    assert torch.allclose(path[0], origin)
    assert all(torch.allclose(state, consistent, atol=1e-5) for state in path[1:])  # α = 1: the physics step is DC
    assert float((origin - meas.operator.start(meas.y)).norm()) > 0.1
    with pytest.raises(ValueError, match="start"):
        KIDOTFlow(VelocityUNet(2, (8, 16), (2,)), start="fbp")


def test_split_lines_holds_out_measured_lines_but_never_the_centre():
    mask = cartesian_mask(32, 4, generator=torch.Generator().manual_seed(0)).expand(400, 32, 32)
    op = SingleCoilMRI(mask)
    kept = op.split_lines(0.4, torch.Generator().manual_seed(1)).mask
    measured, inside = op.mask.amax(-2) > 0, kept.amax(-2) > 0  # (B, 1, W) lines
    assert not bool((inside & ~measured).any()) and bool(inside[..., 16].all())
    held = (measured & ~inside).sum() / (measured.sum() - 400)  # share of the non-centre measured lines
    assert abs(float(held) - 0.4) < 0.02
    multi = MultiCoilMRI(mask[:2], birdcage_maps(4, 32)).split_lines(0.4, torch.Generator().manual_seed(1))
    assert isinstance(multi, MultiCoilMRI) and multi.n_coils == 4


def test_cost_split_makes_the_held_out_lines_a_training_signal():
    meas = _mri_data(4)
    flow_operator = meas.operator.split_lines(0.5, torch.Generator().manual_seed(0))
    flow = KIDOTFlow(VelocityUNet(2, (8, 16), (2,)), n_steps=3, null_space=True)  # zero drift at init
    with torch.no_grad():
        full, split = flow(meas.y, meas.operator, True), flow(meas.y, flow_operator, True)
    assert float(kidot_path_cost(full, meas.y, meas.operator).max()) < 1e-5  # nothing to learn without a split
    assert float(kidot_path_cost(split, meas.y, meas.operator).min()) > 1e-3  # the held-out lines are missed
    with pytest.raises(ValueError, match="cost_split"):
        _small_kidot(cost_split=1.0)
    ct = Measurements(torch.zeros(2, 1, *ParallelBeamCT(32, 20).measurement_shape[1:]), ParallelBeamCT(32, 20))
    with pytest.raises(ValueError, match="cost_split"):
        KIDOT.from_preset("test", "ct", cost_split=0.3).fit(ct, torch.zeros(2, 1, 32, 32), n_iter=1, progress=False)


def test_path_cost_by_hand():
    mask = torch.zeros(4, 4)
    mask[:, 1] = 1
    op = SingleCoilMRI(mask)
    x = torch.zeros(1, 2, 4, 4)
    y = torch.zeros(1, 2, 4, 4)
    y[0, 0, :, 1] = torch.tensor([3.0, 0.0, 0.0, 0.0])
    y[0, 1, :, 1] = torch.tensor([4.0, 0.0, 0.0, 0.0])
    # path I_0 = I_1 = I_2 = 0: each step costs mean over the 4 measured entries of |y| = (5 + 0 + 0 + 0) / 4
    cost = kidot_path_cost([x, x, x], y, op)
    assert cost.item() == pytest.approx(0.5 * 1.25 * 2, abs=1e-5)
    consistent = op.start(y)
    assert kidot_path_cost([x, consistent, consistent], y, op).item() == pytest.approx(0.0, abs=1e-5)


def test_patch_critic_scores_local_patches():
    critic = ConvCritic(1, 32, (8, 16, 16), patch=True)
    x = torch.rand(3, 1, 32, 32)
    assert critic(x).shape == (3,) and ConvCritic(1, 32, (8, 16, 16))(x).shape == (3,)
    poked = x.clone()
    poked[..., 0, 0] += 1.0
    with torch.no_grad():
        changed = (critic.readout(critic.features(x)) - critic.readout(critic.features(poked))).abs() > 0
    assert bool(changed[0, 0, 0, 0]) and not bool(changed[0, 0, -1, -1])  # a corner pixel reaches nearby patches only


def test_step_sizes_start_at_inverse_lipschitz_and_are_clamped():
    flow = KIDOTFlow(VelocityUNet(1, (8, 16), (2,)), n_steps=3, lipschitz=2.0)
    assert torch.allclose(flow.step_sizes(), torch.full((3,), 0.5))
    with torch.no_grad():
        flow.step_logits.fill_(10.0)
    assert torch.allclose(flow.step_sizes(), torch.full((3,), 0.95))


def test_gradient_routing_of_the_two_steps():
    meas = _mri_data(4)
    model = _small_kidot()
    batch = {"meas": meas, "clean": meas.gt}
    model._generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        fake = model.forward_image(meas.y, meas.operator)
    model.critic_step(fake, batch["clean"])
    assert all(p.grad is None for p in model.flow.parameters())
    assert all(p.grad is not None for p in model.critic.parameters())
    model.opt_critic.zero_grad(set_to_none=True)
    model.path_step(batch["meas"], batch["clean"], None)
    assert all(p.grad is None for p in model.critic.parameters())
    assert model.flow.step_logits.grad is not None and model.flow.velocity.head.weight.grad.abs().sum() > 0


def test_path_gradient_matches_finite_differences():
    """Backprop through two unrolled steps (A, A* and the network) equals central finite differences."""
    torch.manual_seed(0)
    mask = cartesian_mask(8, 2, 0.25, generator=torch.Generator().manual_seed(1))
    op = SingleCoilMRI(mask)
    velocity = VelocityUNet(2, (4, 8), (2,), zero_init=False).double()
    flow = KIDOTFlow(velocity, n_steps=2, clamp_steps=False).double()
    y = op.A(torch.randn(2, 2, 8, 8, dtype=torch.float64))
    logits = flow.step_logits.detach().clone().requires_grad_(True)
    head = flow.velocity.head.weight.detach().clone().requires_grad_(True)

    def loss(a, w):
        params = {"step_logits": a, "velocity.head.weight": w}
        return torch.func.functional_call(flow, params, (y, op)).pow(2).sum()

    assert torch.autograd.gradcheck(loss, (logits, head), eps=1e-6, atol=1e-6)
    ct = ParallelBeamCT(8, 5)
    flow_ct = KIDOTFlow(VelocityUNet(1, (4, 8), (2,), zero_init=False).double(), 2).double()
    y_ct = ct.A(torch.rand(1, 1, 8, 8, dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: flow_ct(v, ct).pow(2).sum(), (y_ct,), eps=1e-6, atol=1e-6)


def test_fit_is_deterministic_and_resume_is_exact(tmp_path):
    meas = _mri_data(6)
    runs = []
    for _ in range(2):
        torch.manual_seed(123)
        model = _small_kidot()
        runs.append(model.fit(meas, meas.gt, n_iter=6, batch_size=2, progress=False))
    assert [h["loss"] for h in runs[0]] == [h["loss"] for h in runs[1]]

    torch.manual_seed(123)
    _small_kidot().fit(meas, meas.gt, n_iter=3, batch_size=2, out=tmp_path, checkpoint_every=3, progress=False)
    torch.manual_seed(999)  # a different process state must not matter
    resumed = _small_kidot()
    history = resumed.fit(meas, meas.gt, n_iter=6, batch_size=2, out=tmp_path, resume=True, progress=False)
    assert [h["loss"] for h in history] == pytest.approx([h["loss"] for h in runs[0]], rel=1e-6)


def test_fit_refuses_a_non_adjoint_operator():
    class NotAdjoint(SingleCoilMRI):
        def A_adjoint(self, y):  # noqa: N802
            return 2 * super().A_adjoint(y)

    meas = _mri_data(2)
    bad = Measurements(meas.y, NotAdjoint(meas.operator.mask))
    with pytest.raises(ValueError, match="adjoint test"):
        _small_kidot().fit(bad, meas.gt, n_iter=1, batch_size=2, progress=False)


def test_fit_input_errors():
    meas = _mri_data(2)
    model = _small_kidot()
    with pytest.raises(ValueError, match=r"expected \(N, 1, 32, 32\)"):
        model.fit(meas, torch.rand(2, 1, 16, 16), n_iter=1, progress=False)
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        model.fit(meas, 255 * torch.rand(2, 1, 32, 32), n_iter=1, progress=False)
    with pytest.raises(TypeError, match="complex"):
        model.fit(meas, torch.rand(2, 1, 32, 32, dtype=torch.complex64), n_iter=1, progress=False)
    with pytest.raises(ValueError, match="gp_step"):
        _small_kidot(gp_step="twice")


def test_training_smoke_losses_finite_and_reconstruct_shapes():
    meas = _mri_data(8)
    model = _small_kidot(cost_weight=10.0, gp_step="separate", sup_weight="group")
    history = model.fit(meas, meas.gt, paired=meas, n_iter=4, batch_size=4, probe=meas, eval_every=2,
                        progress=False)
    keys = {"critic_gap", "gp", "path_cost", "terminal", "supervised_l1", "loss", "residual", "probe_psnr"}
    assert keys <= set(history[-1])
    assert all(math.isfinite(v) for h in history for v in h.values())
    assert model.sup_weight == 1e4
    rec = model.reconstruct(meas.y, meas.operator)
    assert rec.shape == (8, 1, 32, 32)
    assert model.reconstruct(meas.y, meas.operator, hard_dc=True).shape == (8, 1, 32, 32)


class _StartOnly(LinearOperator):
    """A = 0 on 1-pixel "images": the path starts at y and has no physics term (Benamou–Brenier case)."""

    def A(self, x):  # noqa: N802
        return torch.zeros_like(x)

    def A_adjoint(self, y):  # noqa: N802
        return torch.zeros_like(y)

    def start(self, y):
        return y

    image_shape = measurement_shape = property(lambda self: (1, 1, 1))


class _MLPVelocity(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 64), nn.SiLU(), nn.Linear(64, 64), nn.SiLU(), nn.Linear(64, 1))

    def forward(self, state, t, start):
        inp = torch.cat([state.flatten(1), start.flatten(1), torch.full_like(state.flatten(1), t)], 1)
        return self.net(inp).view_as(state)


@pytest.mark.slow
def test_benamou_brenier_special_case():
    """A = 0, λ_c = 0, kinetic weight 1, Sinkhorn terminal: the learned path is the W2 geodesic
    N(0, 1) -> N(2, 0.5²), with kinetic energy W2² = 4.25."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    source = torch.randn(2048, 1, 1, 1, generator=g)
    target = 2 + 0.5 * torch.randn(2048, 1, 1, 1, generator=g)
    flow = KIDOTFlow(_MLPVelocity(), n_steps=4, clamp_steps=False)
    model = KIDOT(flow, None, cost_weight=0.0, kinetic_weight=1.0, terminal="sinkhorn", terminal_weight=100.0,
                  lr_flow=3e-3)
    # clean images must lie in [0, 1]: learn the map between the affinely rescaled laws, then map back
    shift, scale = float(target.min()), 4.0
    model.fit(Measurements((source - shift) / scale, _StartOnly()), (target - shift) / scale, n_iter=500,
              batch_size=256, augment_images=False, progress=False)
    with torch.no_grad():
        path = flow((source - shift) / scale, _StartOnly(), return_path=True)
    end = path[-1] * scale + shift
    kinetic = (scale**2 * sum(((b - a) ** 2).flatten(1).sum(1) * 4 for a, b in zip(path, path[1:]))).mean()
    w2 = gaussian_w2(torch.zeros(1), torch.eye(1), torch.full((1,), 2.0), torch.eye(1) * 0.25)
    assert float(kinetic) == pytest.approx(float(w2), rel=0.1)
    assert float(end.mean()) == pytest.approx(2.0, abs=0.1)
    assert float(end.std()) == pytest.approx(0.5, abs=0.1)
