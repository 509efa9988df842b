"""Supervised baselines trained on (simulated) pairs with an L1 loss on the magnitude image:

* :class:`SupervisedUNet` (B2) — MONAI ``UNet`` post-processing of S(y): |S(y)| + U(S(y)) (``start="tv"`` /
  ``"phase_tv"``: of the data-consistent / phase-constrained TV image instead);
* :class:`SupervisedUnrolled` (B3) — the identical K-step :class:`~ot_medrecon.kidot.KIDOTFlow`, trained with
  L1(|I_K|, x) instead of the KIDOT losses (isolates the training signal).

Classical references (no training) are in :mod:`ot_medrecon.classical`.
"""

from __future__ import annotations

import torch
from torch import nn

from .classical import check_start, initial_image
from .engine import Measurements, Reconstructor, SimulatedPairs, check_operator
from .kidot import KIDOTFlow
from .nets import PostProcessUNet, VelocityUNet, preset
from .physics import magnitude

__all__ = ["SupervisedUNet", "SupervisedUnrolled"]


class _Supervised(Reconstructor):
    """L1 training on pairs with Adam; subclasses set ``self.model`` and ``forward_image``."""

    def __init__(self, model: nn.Module, lr: float = 1e-3):
        super().__init__()
        self.model = model
        self.opt = torch.optim.Adam(self.model.parameters(), lr=lr)

    def optimizers(self):
        return {"opt": self.opt}

    def fit(self, pairs: Measurements | SimulatedPairs, n_iter: int = 1500, batch_size: int = 8,
            probe: Measurements | None = None, out=None, resume: bool = False, seed: int = 0,
            eval_every: int = 100, checkpoint_every: int = 100, progress: bool = True) -> list[dict]:
        """Train on ``pairs``: Measurements with ``gt``, or :class:`SimulatedPairs` drawn on the fly."""
        if isinstance(pairs, Measurements):
            if pairs.gt is None:
                raise ValueError("pairs must hold ground truth: Measurements(y, operator, gt)")
            check_operator(pairs.operator, "pairs.operator")
        elif not isinstance(pairs, SimulatedPairs):
            raise TypeError("pairs must be Measurements(y, operator, gt) or SimulatedPairs(images, simulator)")
        return self.run_fit({"pairs": pairs}, n_iter, batch_size, probe, out, resume, seed, eval_every,
                            checkpoint_every, progress)

    def draw_batch(self, data, batch_size, generator):
        return {"pairs": data["pairs"].sample(batch_size, generator)}

    def train_step(self, batch):
        pairs = batch["pairs"]
        loss = (self.forward_image(pairs.y, pairs.operator) - pairs.gt).abs().mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"l1": loss.item()}


class SupervisedUNet(_Supervised):
    """B2: a post-processing U-Net on S(y) (``start="tv"`` / ``"phase_tv"``: on that TV reconstruction), trained
    with L1 on pairs."""

    def __init__(self, model: PostProcessUNet, lr: float = 1e-3, start: str = "measurement"):
        super().__init__(model, lr)
        self.start = check_start(start)

    @classmethod
    def from_preset(cls, name: str = "cpu32", modality: str = "mri", lr: float = 1e-3,
                    start: str = "measurement") -> "SupervisedUNet":
        return cls(PostProcessUNet.from_preset(preset(name), 2 if modality == "mri" else 1), lr, start)

    def forward_image(self, y, operator):
        return self.model(initial_image(y, operator, self.start))


class SupervisedUnrolled(_Supervised):
    """B3: the KIDOT path (same network and steps) trained with L1(|I_K|, x) on pairs."""

    def __init__(self, model: KIDOTFlow, lr: float = 1e-3):
        super().__init__(model, lr)

    @classmethod
    def from_preset(cls, name: str = "cpu32", modality: str = "mri", lr: float = 1e-3) -> "SupervisedUnrolled":
        spec = preset(name)
        flow = KIDOTFlow(VelocityUNet.from_preset(spec, 2 if modality == "mri" else 1), spec.n_steps)
        return cls(flow, lr)

    def forward_image(self, y, operator):
        return magnitude(self.model(y, operator))
