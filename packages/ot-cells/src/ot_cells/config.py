"""VGFM hyper-parameters: one dataclass, CPU-friendly defaults, and presets that reproduce the original runs
(``results/*/params.yml`` of the official code) or shrink the model for quick runs."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

__all__ = ["VGFMConfig", "PRESETS", "resolve_config"]

_CHOICES = {
    "coupling": ("srot", "exact"),
    "scale_cost": (None, "max", "mean"),
    "srot_solver": ("semidual", "scaling"),
    "interpolation": ("forward", "backward"),
    "mass_weighting": ("none", "path"),
    "loss_mode": ("sequential", "sum"),
    "select": ("last", "mean"),
    "time_mode": ("real", "index"),
    "activation": ("tanh", "relu", "elu", "leakyrelu"),
}


@dataclass(frozen=True)
class VGFMConfig:
    """All settings of a VGFM fit. Times are real times (days, hours) unless ``time_mode="index"``.

    Couplings (semi-relaxed OT between consecutive snapshots):
        coupling: "srot" (VGFM) or "exact" (balanced exact OT; with ``growth=False`` the OT-CFM baseline).
        epsilon: entropic regularisation, absolute on the cost after ``scale_cost``. reg_m: lam, the KL weight on
        the source marginal (small lam: more growth, large lam: more transport). scale_cost: None, "max" or
        "mean" (C / statistic). srot_solver: "semidual" or "scaling". tol, max_iter: stopping rule on the
        optimality residual. auto: choose reg_m by the elbow of the transport cost.
        growth: learn g (False: g = 0, pairs still drawn from the coupling).
    Stage 1 (flow matching): steps, batch_size (pairs per interval per step), sigma (path noise, data units),
        lr, interpolation ("forward"; "backward" reproduces the original code's reversed path),
        mass_weighting ("none"; "path" weights each pair by its path mass (m_i/a_i)^(s-1)).
    Stage 2 (distribution fitting, exact W1 to the next snapshot after an Euler rollout): refine_epochs,
        lr_refine, refine_step (Euler step as a fraction of each gap), refine_target_fraction (random share of
        the target snapshot used per epoch), refine_mass_weight (eta > 0 adds eta (log M_pred - log M)^2),
        loss_mode ("sequential" as the original code; "sum" keeps the flow-matching loss in stage 2),
        select (the returned model is the epoch, 0 being the stage-1 model, whose state after the epoch, rolled
        out without updates, has the lowest stage-2 loss (W1, plus the mass term when eta > 0) on the last interval
        ("last", as the original) or on average over the intervals ("mean")), adjoint (adjoint gradients).
    Mass calibration (extension, off by default as in the original): calibrate_mass adds, after stage 2, a
        constant c_k to g on each interval between kept times, c_k = (log(M_k+1 / M_pred(t_k+1)) - log(M_k /
        M_pred(t_k))) / dt_k from the dopri5 rollout of all first cells, so that this rollout carries exactly the
        observed relative mass at every kept time (held-out masses are never used); c is held at its first and
        last values outside the kept times (see ``VGFM.calibrate``).
    Networks: hidden, n_hidden (velocity net), activation. Run: seed, device, checkpoint_every (stage-1 steps).
    """

    coupling: str = "srot"
    epsilon: float = 0.01
    reg_m: float = 5.0
    scale_cost: str | None = "max"
    srot_solver: str = "semidual"
    tol: float = 1e-6
    max_iter: int = 10000
    auto: bool = False
    growth: bool = True
    steps: int = 2000
    batch_size: int = 256
    sigma: float = 0.1
    lr: float = 1e-3
    interpolation: str = "forward"
    mass_weighting: str = "none"
    refine_epochs: int = 30
    lr_refine: float = 1e-4
    refine_step: float = 0.1
    refine_target_fraction: float = 1.0
    refine_mass_weight: float = 0.0
    loss_mode: str = "sequential"
    select: str = "last"
    adjoint: bool = False
    calibrate_mass: bool = False
    hidden: int = 128
    n_hidden: int = 3
    activation: str = "leakyrelu"
    time_mode: str = "real"
    seed: int = 0
    device: str = "cpu"
    checkpoint_every: int = 500

    def __post_init__(self):
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}={getattr(self, name)!r} is not one of {allowed}")
        for name in ("epsilon", "reg_m", "tol", "lr", "lr_refine", "refine_step"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("steps", "refine_epochs"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        for name in ("batch_size", "max_iter", "hidden", "n_hidden", "checkpoint_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.sigma < 0 or self.refine_mass_weight < 0:
            raise ValueError("sigma and refine_mass_weight must be >= 0")
        if not 0 < self.refine_target_fraction <= 1 or not self.refine_step <= 1:
            raise ValueError("refine_target_fraction must be in (0, 1] and refine_step in (0, 1]")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {self.seed!r}")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "VGFMConfig":
        """A named preset (see ``PRESETS``), optionally with some fields changed."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; presets: {sorted(PRESETS)}")
        return cls.from_dict({**PRESETS[name], **overrides})

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "VGFMConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown VGFM setting(s) {unknown}; valid settings: {sorted(names)}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "VGFMConfig":
        return dataclasses.replace(self, **changes)


#: Presets. "small": CPU-small network for tests and demos. The others follow the official runs' params.yml
#: (network size 128 x 3 unless stated).
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "small": {"hidden": 64, "n_hidden": 2, "steps": 500, "refine_epochs": 10},
    "simulation_gene": {"epsilon": 0.003, "reg_m": 10.0, "scale_cost": None, "steps": 200, "refine_epochs": 30},
    "dyngen": {"epsilon": 0.03, "reg_m": 5.0, "scale_cost": None, "steps": 500, "refine_epochs": 30,
               "batch_size": 60},
    "gaussian1000d": {"epsilon": 0.03, "reg_m": 0.5, "scale_cost": None, "steps": 500, "refine_epochs": 10},
    "mouse_hematopoiesis": {"epsilon": 0.03, "reg_m": 10.0, "scale_cost": None, "steps": 200,
                            "refine_epochs": 100, "lr_refine": 1e-3, "refine_target_fraction": 0.5},
    "eb": {"epsilon": 0.01, "reg_m": 5.0, "scale_cost": "max", "steps": 2000, "refine_epochs": 30},
    "cite": {"epsilon": 0.01, "reg_m": 5.0, "scale_cost": "max", "steps": 2000, "refine_epochs": 30},
    "pancreas": {"epsilon": 0.01, "reg_m": 0.1, "scale_cost": "max", "steps": 10000, "refine_epochs": 30,
                 "batch_size": 1024, "hidden": 512, "n_hidden": 5, "refine_target_fraction": 0.2},
}


def resolve_config(config: "VGFMConfig | Mapping[str, Any] | str | None", **overrides: Any) -> VGFMConfig:
    """None -> defaults; a preset name; a dict of settings; or a VGFMConfig. ``overrides`` are applied last."""
    if config is None:
        base = VGFMConfig()
    elif isinstance(config, VGFMConfig):
        base = config
    elif isinstance(config, str):
        base = VGFMConfig.preset(config)
    elif isinstance(config, Mapping):
        base = VGFMConfig.from_dict(config)
    else:
        raise TypeError(f"config must be None, a preset name, a dict or a VGFMConfig, got {type(config).__name__}")
    return base.replace(**overrides) if overrides else base
