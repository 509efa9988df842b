"""Flow helpers against closed forms; training utilities (atomic checkpoints, resume, RNG); the CLI."""

import json
import math
import os
import subprocess
import sys

import pytest
import torch

import ot_core as otc
from ot_core import flows, training
from ot_core.cli import main


def test_interpolant_endpoints_and_velocity():
    x0, x1 = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    torch.testing.assert_close(flows.interpolant(x0, x1, torch.zeros(5)), x0)
    torch.testing.assert_close(flows.interpolant(x0, x1, torch.ones(5)), x1)
    torch.testing.assert_close(flows.interpolant(x1, x0, torch.full((5,), 0.25)), 0.75 * x1 + 0.25 * x0)
    torch.testing.assert_close(flows.conditional_velocity(x0, x1, 2.0), (x1 - x0) / 2)
    noisy = flows.interpolant(x0, x1, torch.full((5,), 0.5), sigma=0.1, generator=torch.Generator().manual_seed(0))
    assert 0 < float((noisy - 0.5 * (x0 + x1)).std()) < 0.3


@pytest.mark.parametrize("method,substeps,tol", [("euler", 2000, 2e-3), ("midpoint", 50, 1e-4), ("rk4", 10, 1e-6),
                                                 ("dopri5", 1, 1e-6)])
def test_integrate_weighted_particles_against_closed_form(method, substeps, tol):
    # dx/dt = -x, d log w/dt = g constant: x(t) = x0 e^{-t}, log w(t) = log w0 + g t
    field = flows.weighted_field(lambda x, t: -x, lambda x, t: torch.full((x.shape[0], 1), 0.3, dtype=x.dtype))
    x0 = torch.randn(4, 2, dtype=torch.float64)
    logw0 = torch.zeros(4, dtype=torch.float64)
    times = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    traj = flows.integrate(field, (x0, logw0), times, method=method, substeps=substeps, rtol=1e-9, atol=1e-10)
    xs, logws = traj.states
    for k, t in enumerate(times):
        torch.testing.assert_close(xs[k], x0 * math.exp(-float(t)), atol=tol, rtol=0)
        torch.testing.assert_close(logws[k], logw0 + 0.3 * t, atol=1e-9, rtol=0)
    back = flows.integrate(field, (xs[-1], logws[-1]), times.flip(0), method=method, substeps=substeps, rtol=1e-9,
                           atol=1e-10)
    torch.testing.assert_close(back.states[0][-1], x0, atol=10 * tol, rtol=0)


def test_integrate_step_sizes_running_cost_and_checkpoint_gradients():
    h = torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64, requires_grad=True)
    x0 = torch.ones(2, 1, dtype=torch.float64, requires_grad=True)
    results = []
    for ckpt in (False, True):
        traj = flows.integrate(lambda t, x: -x, x0, [0.0], step_sizes=h, running_cost=lambda x: x.pow(2).sum(),
                               return_path=True, checkpoint=ckpt)
        expected_final = x0 * (1 - h[0]) * (1 - h[1]) * (1 - h[2])
        torch.testing.assert_close(traj.states[-1], expected_final)
        assert len(traj.path) == 4
        loss = traj.states[-1].sum() + traj.running_cost
        results.append(torch.autograd.grad(loss, (h, x0)))
    for g_plain, g_ckpt in zip(*results):
        torch.testing.assert_close(g_plain, g_ckpt)
    # d/dh0 of x0 (1-h0)(1-h1)(1-h2) summed over 2 entries
    expected = -2 * (1 - 0.2) * (1 - 0.3) + 2 * 0.0  # + running-cost part below
    run_part = 2 * (-2 * (1 - 0.1) * 0.2 * 1 + -2 * (1 - 0.1) * (1 - 0.2) ** 2 * 0.3) + 2 * 1.0  # d/dh0 sum h_k |x_k|^2
    torch.testing.assert_close(results[0][0][0], torch.tensor(expected + run_part, dtype=torch.float64))


def test_kinetic_energy_of_straight_paths_between_emd_pairs_equals_w2():
    # Gaussians: straight-line paths between exact OT pairs have kinetic energy -> W2^2 (Benamou-Brenier)
    n = 300
    x = otc.datasets.gaussians(n, [0.0, 0.0], [[1.0, 0.3], [0.3, 0.5]], seed=0)
    y = otc.datasets.gaussians(n, [2.0, 1.0], [[0.5, 0.0], [0.0, 1.5]], seed=1)
    plan = otc.solve_sample(x, y).plan
    j = plan.argmax(1)
    K = 8
    states = [flows.interpolant(x, y[j], torch.full((n,), k / K)) for k in range(K + 1)]
    energy = flows.kinetic_energy(states, 1.0 / K).mean()
    torch.testing.assert_close(energy, otc.solve_sample(x, y).value, rtol=1e-10, atol=0)
    w2 = otc.testing.gaussian_w2(x.mean(0), torch.cov(x.T), y.mean(0), torch.cov(y.T))
    assert abs(float(energy) - float(w2)) < 0.15 * float(w2)  # finite-sample OT vs the population closed form


def test_gaussian_w2_closed_form_in_one_dimension():
    m1, m2 = torch.tensor([1.0]), torch.tensor([-2.0])
    s1, s2 = torch.tensor([[4.0]]), torch.tensor([[9.0]])
    torch.testing.assert_close(otc.testing.gaussian_w2(m1, s1, m2, s2), torch.tensor(9.0 + (2 - 3) ** 2))


def test_checkpoints_are_atomic_pruned_and_resume_exactly(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    ckpt = training.CheckpointManager(tmp_path / "ckpt", keep_last=2)
    assert ckpt.load_latest() is None
    training.seed_everything(0)
    for step in range(1, 4):
        opt.zero_grad()
        model(torch.randn(4, 3)).sum().backward()
        opt.step()
        ckpt.save(step, model=model, optimizer=opt)
    assert [p.name for p in ckpt.paths()] == ["step-00000002.pt", "step-00000003.pt"]
    assert not [p for p in (tmp_path / "ckpt").iterdir() if p.name.endswith(".tmp")]
    expected_next = torch.randn(4, 3)  # what the interrupted run would draw next
    fresh, fresh_opt = torch.nn.Linear(3, 2), None
    fresh_opt = torch.optim.Adam(fresh.parameters(), lr=0.1)
    torch.manual_seed(123)  # a different RNG state before resuming
    step = training.restore(ckpt.load_latest(), model=fresh, optimizer=fresh_opt)
    assert step == 3
    torch.testing.assert_close(fresh.weight, model.weight)
    torch.testing.assert_close(torch.randn(4, 3), expected_next)
    with pytest.raises(KeyError, match="no entry 'scheduler'"):
        training.restore(ckpt.load_latest(), scheduler=fresh_opt)


def test_atomic_save_leaves_the_old_file_on_failure(tmp_path):
    path = tmp_path / "state.pt"
    training.atomic_save({"ok": 1}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError):
        training.atomic_save({"bad": Unpicklable()}, path)
    assert torch.load(path) == {"ok": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.pt"]


def test_preserve_rng_and_seed_everything():
    training.seed_everything(5)
    a = torch.rand(3)
    training.seed_everything(5)
    with training.preserve_rng():
        torch.rand(100)
    torch.testing.assert_close(torch.rand(3), a)
    with pytest.raises(ValueError, match="seed"):
        training.seed_everything(-1)


def test_cli_demo_quick_writes_metrics_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["balanced"]["marginal_error_l1"] < 1e-3
    assert abs(metrics["semi_relaxed"]["growth_cluster_2"] - 2.0) < 0.01
    assert metrics["partial"]["mass_on_private_class"] < 1e-9
    assert (out / "barycentric_map.png").stat().st_size > 10_000
    assert main(["demo", "--quick", "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["demo", "--quick", "--out", str(tmp_path / "gpu"), "--device", "cuda:7"]) == 2
        assert "no GPU" in capsys.readouterr().err


def test_console_script_check_runs():
    exe = os.path.join(os.path.dirname(sys.executable), "ot-core")
    out = subprocess.run([exe, "check"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "self-test vs POT" in out.stdout
