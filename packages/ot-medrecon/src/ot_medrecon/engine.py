"""Data containers and the training loop shared by KIDOT and the supervised baselines.

* :class:`Measurements` — a set of acquisitions: ``y`` (N, ...), their operator (per-sample masks or a shared
  geometry) and optionally the reference images ``gt`` (for probes, paired training and evaluation).
* :class:`SimulatedPairs` — pairs drawn on the fly: clean images (augmented) through a simulator.
* :class:`Reconstructor` — ``fit`` (seeded batches, atomic checkpoints with ``resume``, probe metrics, a
  progress bar), ``reconstruct`` and ``evaluate``; subclasses define ``train_step`` and ``forward_image``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from ot_core import training
from torch import nn

from .datasets import augment
from .metrics import ReconMetrics
from .physics import LinearOperator, check_adjoint

__all__ = ["Measurements", "SimulatedPairs", "Reconstructor", "check_clean_images", "ADJOINT_TOLERANCE"]

#: ``fit`` refuses an operator whose relative adjointness error (float64) exceeds this.
ADJOINT_TOLERANCE = 1e-4


@dataclass
class Measurements:
    """Acquisitions ``y`` (N, ...) with ``operator`` (N per-sample masks, or shared) and optional ``gt``
    (N, 1, H, W). ``Measurements.from_simulation(sim(images, generator))`` wraps a simulator's output."""

    y: torch.Tensor
    operator: LinearOperator
    gt: torch.Tensor | None = None

    def __post_init__(self):
        self.operator.check_measurement(self.y)
        if self.gt is not None:
            check_clean_images(self.gt, self.operator, name="gt", check_range=False)
            if len(self.gt) != len(self.y):
                raise ValueError(f"gt holds {len(self.gt)} images for {len(self.y)} measurements")

    @classmethod
    def from_simulation(cls, out: dict) -> "Measurements":
        return cls(out["y"], out["operator"], out.get("gt"))

    def __len__(self) -> int:
        return self.y.shape[0]

    def subset(self, index: torch.Tensor) -> "Measurements":
        gt = None if self.gt is None else self.gt[index]
        return Measurements(self.y[index], self.operator.subset(index), gt)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> "Measurements":
        return self.subset(torch.randint(0, len(self), (batch_size,), generator=generator))

    def to(self, device: torch.device | str) -> "Measurements":
        """The same acquisitions on ``device`` (y, operator buffers and gt)."""
        gt = None if self.gt is None else self.gt.to(device)
        return Measurements(self.y.to(device), self.operator.to(device), gt)

    def batches(self, batch_size: int):
        for start in range(0, len(self), batch_size):
            yield self.subset(torch.arange(start, min(start + batch_size, len(self))))


class SimulatedPairs:
    """Training pairs simulated on the fly: ``sample(batch, generator)`` augments (flips, 90° rotations) a
    random batch of ``images`` and passes it through ``simulator`` (e.g. :class:`~ot_medrecon.NominalMRI`)."""

    def __init__(self, images: torch.Tensor, simulator: Callable, augment: bool = True):
        self.images, self.simulator, self.augment = images, simulator, augment

    def __len__(self) -> int:
        return len(self.images)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> Measurements:
        x = self.images[torch.randint(0, len(self.images), (batch_size,), generator=generator)]
        if self.augment:
            x = augment(x, generator)
        return Measurements.from_simulation(self.simulator(x, generator))


def check_clean_images(images: torch.Tensor, operator: LinearOperator, name: str = "clean_images",
                       check_range: bool = True) -> None:
    """Images must be real (N, 1, H, W), finite, on the operator's grid and (``check_range``) in [0, 1] up to 1 %
    (reference images of prospective acquisitions may ring slightly above 1)."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor (N, 1, H, W), got {type(images).__name__}")
    if images.is_complex():
        raise TypeError(f"{name} must be real magnitude images (N, 1, H, W), got a complex tensor")
    size = operator.image_shape[-2:]
    if images.dim() != 4 or images.shape[1] != 1 or tuple(images.shape[-2:]) != tuple(size):
        raise ValueError(f"{name} has shape {tuple(images.shape)}; expected (N, 1, {size[0]}, {size[1]}) to match the "
                         "operator (resize with ot_medrecon.datasets.area_resize)")
    if not torch.isfinite(images).all():
        raise ValueError(f"{name} contains NaN or Inf values")
    if check_range and images.numel() and (float(images.min()) < -0.01 or float(images.max()) > 1.01):
        raise ValueError(f"{name} range [{float(images.min()):.3g}, {float(images.max()):.3g}] is outside [0, 1]; "
                         "scale the images to [0, 1] (e.g. divide by their maximum)")


def check_operator(op: LinearOperator, name: str = "operator") -> float:
    """Relative adjointness error of ``op`` (float64); raises ValueError above :data:`ADJOINT_TOLERANCE`."""
    probe_op = op.subset(torch.arange(min(op.batch_size, 4))) if op.batch_size else op
    err = check_adjoint(probe_op, torch.float64, n_trials=2)
    if not err <= ADJOINT_TOLERANCE:
        raise ValueError(f"{name} fails the adjoint test: |<Ax,y> - <x,A*y>| / |<Ax,y>| = {err:.2e} > "
                         f"{ADJOINT_TOLERANCE:g}; its A_adjoint is not the adjoint of A")
    return err


def _to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device) if isinstance(v, (torch.Tensor, Measurements)) else v for k, v in batch.items()}


class Reconstructor(nn.Module):
    """Base of every trainable reconstruction method. Subclasses implement :meth:`forward_image` (y, operator
    -> (B, 1, H, W)), :meth:`train_step` (one optimisation step -> dict of floats) and :meth:`optimizers`."""

    metrics = ReconMetrics()

    def forward_image(self, y: torch.Tensor, operator: LinearOperator) -> torch.Tensor:
        raise NotImplementedError

    def train_step(self, batch: dict) -> dict[str, float]:
        raise NotImplementedError

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def draw_batch(self, data: dict, batch_size: int, generator: torch.Generator) -> dict:
        """One training batch from the ``data`` given to :meth:`fit` (subclasses add their fields)."""
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def reconstruct(self, y: torch.Tensor, operator: LinearOperator, batch_size: int = 64) -> torch.Tensor:
        """Reconstructed images (B, 1, H, W) on the CPU (computed on the model's device, no gradients)."""
        operator.check_measurement(y)
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                parts = []
                for part in Measurements(y, operator).batches(batch_size):
                    part = part.to(self.device)
                    parts.append(self.forward_image(part.y, part.operator).cpu())
        finally:
            self.train(was_training)
        return torch.cat(parts)

    def evaluate(self, data: Measurements) -> dict[str, torch.Tensor]:
        """Per-case metrics (PSNR, SSIM, NMSE, DC) of the reconstructions of ``data`` (which needs ``gt``)."""
        if data.gt is None:
            raise ValueError("evaluate needs Measurements with gt")
        pred = self.reconstruct(data.y, data.operator)
        return self.metrics(pred, data.gt, data.operator.cpu(), data.y)

    def run_fit(self, data: dict, n_iter: int, batch_size: int, probe: Measurements | None = None,
                out: str | os.PathLike | None = None, resume: bool = False, seed: int = 0, eval_every: int = 100,
                checkpoint_every: int = 100, progress: bool = True) -> list[dict]:
        """The loop of every ``fit``: seeded batches, ``train_step``, probe metrics every ``eval_every``
        iterations, atomic checkpoints every ``checkpoint_every`` under ``out/checkpoints`` (``resume=True``
        continues from the last one, bit-for-bit). Returns the history (one dict per iteration)."""
        if n_iter < 0 or batch_size < 1:
            raise ValueError(f"n_iter must be >= 0 and batch_size >= 1, got {n_iter}, {batch_size}")
        generator = torch.Generator().manual_seed(seed)
        history: list[dict] = []
        manager = training.CheckpointManager(Path(out) / "checkpoints", keep_last=1) if out is not None else None
        start = 0
        if resume:
            state = manager.load_latest() if manager else None
            if state is None:
                raise ValueError(f"resume=True but there is no checkpoint under {out}/checkpoints")
            start = training.restore(state, model=self, **self.optimizers())
            generator.set_state(state["generator"])
            history = state["history"]
        self.train()
        for it in training.progress(range(start, n_iter), total=n_iter, initial=start, desc=type(self).__name__,
                                    disable=not progress):
            batch = _to_device(self.draw_batch(data, batch_size, generator), self.device)
            logs = {"iter": it + 1, **self.train_step(batch)}
            if probe is not None and ((it + 1) % eval_every == 0 or it + 1 == n_iter):
                scores = self.evaluate(probe)
                logs.update(probe_psnr=float(scores["psnr"].mean()), probe_ssim=float(scores["ssim"].mean()))
                self.train()
            history.append(logs)
            if manager is not None and ((it + 1) % checkpoint_every == 0 or it + 1 == n_iter):
                manager.save(it + 1, model=self, generator=generator.get_state(), history=history,
                             **self.optimizers())
        return history
