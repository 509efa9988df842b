"""Networks (MONAI backbones) and size presets.

* :class:`VelocityUNet` — G_θ(I_k, t_k, S(y)), the learned part of the transport velocity (the "∇ℛ" term):
  a MONAI ``UNet`` on concat(I_k, S(y), t·1) with a zero-initialised 1x1 output head, so the path starts as
  pure Landweber from S(y).
* :class:`ConvCritic` — the Kantorovich potential φ_ω: strided 4x4 convolutions, LeakyReLU(0.2), no
  normalisation (batch norm breaks per-sample gradient penalties), N(0, 0.02) init, a linear read-out.
* :func:`preset` — ``"test"``, ``"cpu32"``, ``"cpu64"``, ``"paper"`` (sizes of the paper are unknown; the
  ``paper`` preset is this project's choice for GPUs).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from monai.networks.nets import UNet
from torch import nn

from .physics import magnitude

__all__ = ["VelocityUNet", "ConvCritic", "PostProcessUNet", "Preset", "PRESETS", "preset"]


@dataclass(frozen=True)
class Preset:
    """Sizes of one configuration: image ``size``, path steps ``n_steps`` K, U-Net ``channels`` / ``strides`` /
    ``num_res_units``, critic ``critic_channels``, ``batch_size`` and training ``n_iter``."""

    name: str
    size: int
    n_steps: int
    channels: tuple[int, ...]
    strides: tuple[int, ...]
    num_res_units: int
    critic_channels: tuple[int, ...]
    batch_size: int
    n_iter: int


PRESETS = {
    "test": Preset("test", 32, 3, (8, 16, 32), (2, 2), 0, (8, 16, 32), 4, 20),
    "cpu32": Preset("cpu32", 32, 4, (16, 32, 64), (2, 2), 0, (16, 32, 64, 64), 8, 1500),
    "cpu64": Preset("cpu64", 64, 6, (16, 32, 64), (2, 2), 1, (16, 32, 64, 64), 4, 3000),
    "paper": Preset("paper", 256, 10, (32, 64, 128, 256), (2, 2, 2), 2, (64, 128, 256, 512, 512, 512), 4, 100_000),
}


def preset(name: str) -> Preset:
    """The named :class:`Preset` (``"test"``, ``"cpu32"``, ``"cpu64"``, ``"paper"``)."""
    if name not in PRESETS:
        raise ValueError(f"preset={name!r}; use one of {sorted(PRESETS)}")
    return PRESETS[name]


def _unet(in_channels: int, out_channels: int, channels, strides, num_res_units: int) -> UNet:
    return UNet(spatial_dims=2, in_channels=in_channels, out_channels=out_channels, channels=tuple(channels),
                strides=tuple(strides), num_res_units=num_res_units)


class VelocityUNet(nn.Module):
    """G_θ(I, t, S): (B, C, H, W) -> (B, C, H, W) for image channels C (2 for MRI, 1 for CT).

    Input concat(I, S, t·1) of 2C + 1 channels to a MONAI ``UNet``; output through a 1x1 convolution that is
    zero at initialisation (``zero_init=True``).
    """

    def __init__(self, image_channels: int = 2, channels=(16, 32, 64), strides=(2, 2), num_res_units: int = 0,
                 zero_init: bool = True):
        super().__init__()
        self.image_channels = image_channels
        hidden = channels[0]
        self.backbone = _unet(2 * image_channels + 1, hidden, channels, strides, num_res_units)
        self.head = nn.Conv2d(hidden, image_channels, kernel_size=1)
        if zero_init:
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    @classmethod
    def from_preset(cls, spec: Preset, image_channels: int) -> "VelocityUNet":
        return cls(image_channels, spec.channels, spec.strides, spec.num_res_units)

    def forward(self, state: torch.Tensor, t: torch.Tensor | float, start: torch.Tensor) -> torch.Tensor:
        t_channel = torch.as_tensor(t, dtype=state.dtype, device=state.device).expand(
            state.shape[0], 1, *state.shape[-2:])
        return self.head(self.backbone(torch.cat([state, start, t_channel], dim=1)))


class PostProcessUNet(nn.Module):
    """The supervised post-processing baseline: |S(y)| + U(S(y)) with a MONAI ``UNet`` (B, C, H, W) -> (B, 1, H, W)."""

    def __init__(self, image_channels: int = 2, channels=(16, 32, 64), strides=(2, 2), num_res_units: int = 0):
        super().__init__()
        self.image_channels = image_channels
        self.backbone = _unet(image_channels, 1, channels, strides, num_res_units)

    @classmethod
    def from_preset(cls, spec: Preset, image_channels: int) -> "PostProcessUNet":
        return cls(image_channels, spec.channels, spec.strides, spec.num_res_units)

    def forward(self, start: torch.Tensor) -> torch.Tensor:
        return magnitude(start) + self.backbone(start)


class ConvCritic(nn.Module):
    """φ_ω: (B, C, H, W) -> (B,). Convolutions 4x4 stride 2 with ``channels``, LeakyReLU(0.2), no normalisation,
    weights N(0, 0.02), then a linear layer on the flattened features (``patch=False``, one score per image).

    ``patch=True`` makes a fully convolutional (PatchGAN-style) critic: two stride-2 convolutions, the others
    stride 1, a 1x1 read-out and the mean over positions, i.e. the average score of 18x18-pixel patches. It
    judges local texture (noise, aliasing) and cannot memorise whole images of a small clean set.
    """

    def __init__(self, in_channels: int = 1, image_size: int = 64, channels=(16, 32, 64, 64), patch: bool = False):
        super().__init__()
        layers, c_in, side = [], in_channels, image_size
        for i, c_out in enumerate(channels):
            stride = 2 if (not patch or i < 2) else 1
            kernel = 4 if stride == 2 else 3
            layers += [nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=1), nn.LeakyReLU(0.2)]
            c_in, side = c_out, max(side // stride, 1)
        self.features = nn.Sequential(*layers)
        self.patch = patch
        self.readout = nn.Conv2d(c_in, 1, 1) if patch else nn.Linear(c_in * side * side, 1)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight, 0.0, 0.02)
                nn.init.zeros_(m.bias)

    @classmethod
    def from_preset(cls, spec: Preset, image_size: int | None = None, patch: bool = False) -> "ConvCritic":
        channels = spec.critic_channels[:3] if patch else spec.critic_channels
        return cls(1, image_size or spec.size, channels, patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.features(x)
        if self.patch:
            return self.readout(features).mean((1, 2, 3))
        return self.readout(features.flatten(1)).squeeze(1)
