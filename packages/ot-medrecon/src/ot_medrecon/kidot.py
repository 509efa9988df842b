"""KIDOT: knowledge-informed dynamic optimal transport (Zheng et al., arXiv:2505.17644), as reconstructed here.

Verified (abstract and a third-party summary): reconstruction is a dynamic transport path from measurements to
images, learned from unpaired data, whose running cost is the imaging cost c(x, y) = ||y - A(x)||_1 and whose
dynamics follow dI/dt = -(A*(A I - y) + ∇ℛ(I)). Everything below beyond that — the Euler discretisation with
learned steps, the time-conditioned network for ∇ℛ, the semi-dual critic for the terminal constraint, the
update order — is this project's design (spec §2.3–2.5), not the authors' code (none is public).

Path (K Euler steps from I_0 = S(y), one shared network G_θ):
    I_{k+1} = I_k - α_k [A*(A I_k - y) + G_θ(I_k, t_k, S(y))],  α_k = softplus(a_k) (<= 1.9 / L_A).
Losses per iteration (critic step, then path step):
    L_ω = mean φ(|I_K|) - mean φ(x) + λ_gp GP                         (x: unpaired clean images)
    L_θ = λ_c mean_b Σ_k h mean_measured |y - A I_k| - mean φ(|I_K|) [+ λ_sup L1(|I_K|, x_gt)] [+ β kinetic]
"""

from __future__ import annotations

import math

import torch
from ot_core import flows, neural, sinkhorn_divergence
from torch import nn

from .engine import Measurements, Reconstructor, SimulatedPairs, check_clean_images, check_operator
from .classical import check_start, initial_image
from .datasets import augment
from .nets import ConvCritic, VelocityUNet, preset
from .physics import LinearOperator, magnitude

__all__ = ["KIDOTFlow", "kidot_path_cost", "KIDOT", "GROUP_SUP_WEIGHT"]

#: λ_sup of the group's trainers (turns training into L1 regression); ``sup_weight="group"`` selects it.
GROUP_SUP_WEIGHT = 1e4


def _inverse_softplus(value: float) -> float:
    return value + math.log(-math.expm1(-value))


class KIDOTFlow(nn.Module):
    """The knowledge-informed transport path: K Euler steps of dI/dt = -(α_k / h)[A*(A I - y) + G_θ(I, t, S)].

    ``velocity``: a network ``G(state, t, start)`` (e.g. :class:`~ot_medrecon.nets.VelocityUNet`);
    ``lipschitz``: L_A = ||A*A|| (1 for this package's normalised operators); the steps start at 1 / L_A and
    are clamped to 1.9 / L_A when ``clamp_steps`` (the data part alone stays a contraction).
    ``physics=False`` drops the A*(A I - y) term (ablation). ``null_space=True`` (operators with A A* = I, e.g.
    single-coil Cartesian MRI) replaces G_θ by its null-space part (I - A*A) G_θ: the learned drift only fills
    the unmeasured k-space and the path keeps the measured samples of its start S(y) = A* y exactly (a
    data-consistency layer; at the issue's 20 dB SNR the noise it keeps is far below the aliasing it removes).
    ``start="tv"`` (operators with A A* = I) starts the path at the classical data-consistent TV reconstruction
    (:func:`~ot_medrecon.classical.tv_reconstruction`) instead of S(y) = A* y: the imaging knowledge of compressed
    sensing as the path's origin; ``start="phase_tv"`` at the phase-constrained TV reconstruction
    (:func:`~ot_medrecon.classical.phase_constrained_tv`: also a real magnitude under a smooth phase). Both are
    extensions of this package, not from the paper.
    """

    def __init__(self, velocity: nn.Module, n_steps: int = 4, clamp_steps: bool = True, lipschitz: float = 1.0,
                 physics: bool = True, null_space: bool = False, start: str = "measurement"):
        super().__init__()
        if n_steps < 1:
            raise ValueError(f"n_steps must be >= 1, got {n_steps}")
        self.start = check_start(start)
        self.velocity, self.n_steps = velocity, n_steps
        self.clamp_steps, self.lipschitz, self.physics = clamp_steps, lipschitz, physics
        self.null_space = null_space
        self.step_logits = nn.Parameter(torch.full((n_steps,), _inverse_softplus(1.0 / lipschitz)))

    def step_sizes(self) -> torch.Tensor:
        """α_k = softplus(a_k), (K,), clamped to 1.9 / L_A when ``clamp_steps``."""
        alpha = nn.functional.softplus(self.step_logits)
        return alpha.clamp(max=1.9 / self.lipschitz) if self.clamp_steps else alpha

    def initial_state(self, y: torch.Tensor, operator: LinearOperator) -> torch.Tensor:
        """I_0 (B, C, H, W): S(y), or the (phase-constrained) TV reconstruction with ``start="tv"`` /
        ``"phase_tv"`` (no gradients)."""
        return initial_image(y, operator, self.start)

    def forward(self, y: torch.Tensor, operator: LinearOperator, return_path: bool = False,
                start: torch.Tensor | None = None):
        """I_K (B, C, H, W), or the list [I_0, ..., I_K] with ``return_path=True``. ``start``: I_0 when already
        computed (:meth:`initial_state`)."""
        if self.null_space and not operator.partial_isometry:
            raise ValueError(f"null_space=True needs an operator with A A* = I (e.g. SingleCoilMRI); "
                             f"{type(operator).__name__} is not one: use null_space=False")
        if start is None:
            start = self.initial_state(y, operator)
        alpha, h = self.step_sizes(), 1.0 / self.n_steps

        def field(t: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
            k = min(int(round(float(t) * self.n_steps)), self.n_steps - 1)
            drift = self.velocity(state, k * h, start)
            if self.null_space:
                drift = drift - operator.normal(drift)
            if self.physics:
                drift = drift + operator.A_adjoint(operator.A(state) - y)
            return -(alpha[k] / h) * drift

        times = torch.linspace(0, 1, self.n_steps + 1, dtype=y.dtype)
        traj = flows.integrate(field, start, times, method="euler", return_path=return_path)
        return traj.path if return_path else traj.states[-1]


def kidot_path_cost(path: list[torch.Tensor], y: torch.Tensor, operator: LinearOperator) -> torch.Tensor:
    """C = Σ_{k=1..K} h · mean_{measured} |y - A I_k| per sample (B,); |·| is the complex modulus for MRI."""
    h = 1.0 / (len(path) - 1)
    return flows.path_cost(path[1:], lambda state: operator.misfit(state, y), h)


class KIDOT(Reconstructor):
    """KIDOT trainer and reconstructor: a :class:`KIDOTFlow` and a critic φ (:class:`~ot_medrecon.nets.ConvCritic`).

    ``fit(measurements, clean_images)`` learns from *unpaired* data: measurements (no ground truth) and an
    independent set of clean images; ``paired=`` adds the supervised term (weight ``sup_weight``, 10 when
    pairs are given and it is left at None; ``"group"`` = 1e4 as the group's trainers). ``terminal="sinkhorn"``
    replaces the critic by the debiased Sinkhorn divergence of ot-core (``terminal_weight``). ``gp_step=
    "separate"`` reproduces the group's extra optimiser step on the gradient penalty alone. Adam (0.5, 0.9) or
    ``optimizer="rmsprop"``. ``cost_split`` (Cartesian MRI, 0 = off): each training measurement's path starts from
    its measured lines minus a random ``cost_split`` fraction, while the path cost still scores all measured lines,
    so the held-out lines give the drift a data signal for the unmeasured k-space (self-supervised splitting as in
    SSDU; an extension of this package, not from the paper). Inference always uses every measured line.
    """

    def __init__(self, flow: KIDOTFlow, critic: nn.Module | None, cost_weight: float = 0.3,
                 sup_weight: float | str | None = None, gp_weight: float = 10.0, gp_step: str = "joint",
                 n_critic: int = 1, kinetic_weight: float = 0.2, terminal: str = "critic",
                 terminal_weight: float = 1.0, optimizer: str = "adam", lr_flow: float = 2e-4,
                 lr_critic: float = 4e-4, cost_split: float = 0.0):
        super().__init__()
        if not 0.0 <= cost_split < 1.0:
            raise ValueError(f"cost_split must be in [0, 1) (fraction of measured lines held out), got {cost_split}")
        if gp_step not in ("joint", "separate"):
            raise ValueError(f"gp_step={gp_step!r}; use 'joint' or 'separate'")
        if terminal not in ("critic", "sinkhorn"):
            raise ValueError(f"terminal={terminal!r}; use 'critic' or 'sinkhorn'")
        if terminal == "critic" and critic is None:
            raise ValueError("terminal='critic' needs a critic network")
        if optimizer not in ("adam", "rmsprop"):
            raise ValueError(f"optimizer={optimizer!r}; use 'adam' or 'rmsprop'")
        if sup_weight == "group":
            sup_weight = GROUP_SUP_WEIGHT
        self.flow, self.critic = flow, critic
        self.cost_weight, self.sup_weight, self.gp_weight = cost_weight, sup_weight, gp_weight
        self.gp_step, self.n_critic, self.kinetic_weight = gp_step, n_critic, kinetic_weight
        self.terminal, self.terminal_weight = terminal, terminal_weight
        self.cost_split = cost_split
        make = ((lambda p, lr: torch.optim.Adam(p, lr=lr, betas=(0.5, 0.9))) if optimizer == "adam"
                else (lambda p, lr: torch.optim.RMSprop(p, lr=lr)))
        self.opt_flow = make(self.flow.parameters(), lr_flow)
        self.opt_critic = make(self.critic.parameters(), lr_critic) if critic is not None else None
        self._generator: torch.Generator | None = None

    @classmethod
    def from_preset(cls, name: str = "cpu32", modality: str = "mri", image_size: int | None = None,
                    **kwargs) -> "KIDOT":
        """A KIDOT with the networks of preset ``name`` for ``modality`` ("mri": complex 2-channel states,
        "ct": 1 channel); keyword arguments go to the constructor (``n_steps``, ``physics``, ``null_space``,
        ``start`` to the flow, ``patch_critic=True`` for a patch critic)."""
        spec = preset(name)
        channels = {"mri": 2, "ct": 1}.get(modality)
        if channels is None:
            raise ValueError(f"modality={modality!r}; use 'mri' or 'ct'")
        flow = KIDOTFlow(VelocityUNet.from_preset(spec, channels), kwargs.pop("n_steps", spec.n_steps),
                         physics=kwargs.pop("physics", True), null_space=kwargs.pop("null_space", False),
                         start=kwargs.pop("start", "measurement"))
        critic = ConvCritic.from_preset(spec, image_size, patch=kwargs.pop("patch_critic", False))
        return cls(flow, critic, **kwargs)

    # ------------------------------------------------------------------------------------------ training
    def optimizers(self):
        opts = {"opt_flow": self.opt_flow}
        if self.opt_critic is not None:
            opts["opt_critic"] = self.opt_critic
        return opts

    def forward_image(self, y, operator):
        return magnitude(self.flow(y, operator))

    def fit(self, measurements: Measurements, clean_images: torch.Tensor,
            paired: Measurements | SimulatedPairs | None = None, n_iter: int = 1500, batch_size: int = 8,
            probe: Measurements | None = None, out=None, resume: bool = False, seed: int = 0,
            augment_images: bool = True, eval_every: int = 100, checkpoint_every: int = 100,
            progress: bool = True) -> list[dict]:
        """Train on unpaired ``measurements`` (their ``gt`` is ignored) and ``clean_images`` (N, 1, H, W) in [0, 1].

        Inputs and the operator (adjoint test) are checked before any training. ``probe``: held-out paired
        data scored every ``eval_every`` iterations (never used for training). ``out``: folder for atomic
        checkpoints; ``resume=True`` continues the last one. Returns the per-iteration history of every loss
        term by name.
        """
        if not isinstance(measurements, Measurements):
            raise TypeError("measurements must be ot_medrecon.Measurements(y, operator)")
        check_operator(measurements.operator, "measurements.operator")
        check_clean_images(clean_images, measurements.operator)
        if self.cost_split and not hasattr(measurements.operator, "split_lines"):
            raise ValueError(f"cost_split={self.cost_split} needs Cartesian MRI measurements (SingleCoilMRI or "
                             f"MultiCoilMRI), not {type(measurements.operator).__name__}; use cost_split=0")
        if paired is not None and getattr(paired, "gt", True) is None:
            raise ValueError("paired needs ground truth: Measurements(y, operator, gt) or SimulatedPairs")
        if self.sup_weight is None:
            self.sup_weight = 10.0 if paired is not None else 0.0
        data = {"measurements": measurements.subset(torch.arange(len(measurements))), "clean": clean_images,
                "paired": paired, "augment": augment_images}
        data["measurements"].gt = None  # unpaired: the ground truth of the measurements is never used
        if self.flow.start != "measurement" and not self.cost_split:  # a fixed pool: its TV starts once, not per batch
            data["starts"] = torch.cat([self.flow.initial_state(chunk.y, chunk.operator)
                                        for chunk in data["measurements"].batches(64)])
        return self.run_fit(data, n_iter, batch_size, probe, out, resume, seed, eval_every, checkpoint_every,
                            progress)

    def draw_batch(self, data, batch_size, generator):
        self._generator = generator
        clean = data["clean"][torch.randint(0, len(data["clean"]), (batch_size,), generator=generator)]
        index = torch.randint(0, len(data["measurements"]), (batch_size,), generator=generator)
        batch = {"meas": data["measurements"].subset(index),
                 "clean": augment(clean, generator) if data["augment"] else clean}
        if "starts" in data:
            batch["start"] = data["starts"][index]
        if data["paired"] is not None and self.sup_weight:
            batch["paired"] = data["paired"].sample(batch_size, generator)
        return batch

    def critic_step(self, fake: torch.Tensor, clean: torch.Tensor) -> dict[str, float]:
        """One optimiser step of φ on generated |I_K| (detached) and clean images: mean φ(fake) - mean φ(x) + GP."""
        self.critic.requires_grad_(True)
        loss = neural.critic_loss(self.critic(clean), self.critic(fake))
        gp = neural.gradient_penalty(self.critic, clean, fake, weight=self.gp_weight, generator=self._gp_generator(clean))
        self.opt_critic.zero_grad(set_to_none=True)
        if self.gp_step == "joint":
            (loss + gp).backward()
            self.opt_critic.step()
        else:  # the group's practice: a second optimiser step on the penalty alone
            loss.backward()
            self.opt_critic.step()
            self.opt_critic.zero_grad(set_to_none=True)
            gp = neural.gradient_penalty(self.critic, clean, fake, weight=self.gp_weight,
                                         generator=self._gp_generator(clean))
            gp.backward()
            self.opt_critic.step()
        return {"critic_gap": -loss.item(), "gp": gp.item()}

    def _gp_generator(self, like: torch.Tensor) -> torch.Generator | None:
        """The seeded CPU generator of ``fit`` on CPU; on an accelerator the device's global RNG."""
        return self._generator if like.device.type == "cpu" else None

    def terminal_loss(self, image: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
        """-mean φ(|I_K|) (critic), or S_ε(|I_K|, x) on flattened batches (``terminal="sinkhorn"``)."""
        if self.terminal == "critic":
            return -self.critic(image).mean()
        a, b = image.flatten(1), clean.flatten(1)
        reg = 0.05 * float(torch.cdist(a.detach(), b).pow(2).median().clamp_min(1e-6))
        return self.terminal_weight * sinkhorn_divergence(a, b, reg=reg)

    def path_step(self, meas: Measurements, clean: torch.Tensor, paired: Measurements | None,
                  flow_operator: LinearOperator | None = None, start: torch.Tensor | None = None) -> dict[str, float]:
        """One optimiser step of θ and the step sizes (φ frozen, gradients through every path step). The path
        runs with ``flow_operator`` (default: the measurements' operator) from ``start`` (default: the flow's
        initial state); the path cost uses the measurements' operator."""
        if self.critic is not None:
            self.critic.requires_grad_(False)
        path = self.flow(meas.y, flow_operator or meas.operator, return_path=True, start=start)
        image = magnitude(path[-1])
        cost = kidot_path_cost(path, meas.y, meas.operator).mean()
        terminal = self.terminal_loss(image, clean)
        loss = self.cost_weight * cost + terminal
        logs = {"path_cost": cost.item(), "terminal": terminal.item()}
        if self.kinetic_weight:
            kinetic = flows.kinetic_energy(path, 1.0 / self.flow.n_steps).mean()
            loss = loss + self.kinetic_weight * kinetic
            logs["kinetic"] = kinetic.item()
        if paired is not None:
            sup = (self.forward_image(paired.y, paired.operator) - paired.gt).abs().mean()
            loss = loss + self.sup_weight * sup
            logs["supervised_l1"] = sup.item()
        self.opt_flow.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_flow.step()
        with torch.no_grad():
            residual = (meas.operator.A(path[-1]) - meas.y).flatten(1).norm(dim=1) / meas.y.flatten(1).norm(dim=1)
        logs.update(loss=loss.item(), residual=residual.mean().item())
        return logs

    def train_step(self, batch: dict) -> dict[str, float]:
        """Critic step(s) then one path step; returns every loss term by name."""
        logs = {}
        meas = batch["meas"]
        flow_operator = (meas.operator.split_lines(self.cost_split, self._generator) if self.cost_split
                         else meas.operator)
        start = batch.get("start")  # cached by fit for a fixed pool without a split
        if start is None:
            start = self.flow.initial_state(meas.y, flow_operator)  # shared by the critic and path steps
        if self.terminal == "critic":
            with torch.no_grad():  # θ frozen: the path is rolled once and reused by the n_critic steps
                fake = magnitude(self.flow(meas.y, flow_operator, start=start))
            for _ in range(self.n_critic):
                logs = self.critic_step(fake, batch["clean"])
        logs.update(self.path_step(meas, batch["clean"], batch.get("paired"), flow_operator, start))
        return logs

    def reconstruct(self, y, operator, batch_size: int = 64, hard_dc: bool = False) -> torch.Tensor:
        """|I_K| (B, 1, H, W). ``hard_dc=True`` (noise-free Cartesian MRI only) re-inserts the measured k-space
        samples into I_K before taking the magnitude."""
        if not hard_dc:
            return super().reconstruct(y, operator, batch_size)
        operator.check_measurement(y)
        with torch.no_grad():
            state = self.flow(y, operator)
            state = state - operator.A_adjoint(operator.A(state)) + operator.A_adjoint(y)
        return magnitude(state)
