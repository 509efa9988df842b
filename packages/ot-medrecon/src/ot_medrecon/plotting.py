"""Figures (matplotlib, written as PNG): reconstructions with error maps, path snapshots, training curves."""

from __future__ import annotations

import os
from pathlib import Path

import torch

__all__ = ["plot_reconstructions", "plot_path", "plot_history"]


def _figure(rows: int, cols: int, scale: float = 2.0):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, cols, figsize=(scale * cols, scale * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    return plt, fig, axes


def _np(image: torch.Tensor):
    return image.detach().cpu().float().numpy()


def _save(plt, fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_reconstructions(gt: torch.Tensor, recons: dict[str, torch.Tensor], path: str | os.PathLike,
                         scores: dict[str, dict[str, torch.Tensor]] | None = None, n_cases: int = 3) -> Path:
    """Rows = cases; columns = GT, then each method's image and its |error| map (with PSNR/SSIM in the title)."""
    n = min(n_cases, gt.shape[0])
    plt, fig, axes = _figure(n, 1 + 2 * len(recons))
    for i in range(n):
        scale = float(gt[i].max()) or 1.0
        axes[i, 0].imshow(_np(gt[i, 0] / scale), cmap="gray", vmin=0, vmax=1)
        axes[i, 0].set_title("ground truth", fontsize=8)
        for j, (name, images) in enumerate(recons.items()):
            title = name
            if scores and name in scores:
                title += f"\n{float(scores[name]['psnr'][i]):.1f} dB / {float(scores[name]['ssim'][i]):.3f}"
            axes[i, 1 + 2 * j].imshow(_np(images[i, 0] / scale), cmap="gray", vmin=0, vmax=1)
            axes[i, 1 + 2 * j].set_title(title, fontsize=8)
            axes[i, 2 + 2 * j].imshow(_np((images[i, 0] - gt[i, 0]).abs() / scale), cmap="magma", vmin=0, vmax=0.3)
            axes[i, 2 + 2 * j].set_title(f"|error| {name}", fontsize=8)
    return _save(plt, fig, path)


def plot_path(states: list[torch.Tensor], path: str | os.PathLike, n_cases: int = 2) -> Path:
    """Magnitudes of the KIDOT path I_t at t = 0, 1/3, 2/3, 1 (nearest steps) for the first cases."""
    from .physics import magnitude

    k = len(states) - 1
    picks = sorted({round(f * k) for f in (0, 1 / 3, 2 / 3, 1)})
    n = min(n_cases, states[0].shape[0])
    plt, fig, axes = _figure(n, len(picks))
    for i in range(n):
        scale = float(magnitude(states[-1][i:i + 1]).max()) or 1.0
        for j, step in enumerate(picks):
            axes[i, j].imshow(_np(magnitude(states[step][i:i + 1])[0, 0] / scale), cmap="gray", vmin=0, vmax=1)
            axes[i, j].set_title(f"t = {step / k:.2f}", fontsize=8)
    return _save(plt, fig, path)


def plot_history(history: list[dict], path: str | os.PathLike,
                 keys: tuple[str, ...] = ("path_cost", "terminal", "critic_gap", "probe_psnr", "l1")) -> Path:
    """Training curves of the logged terms present in ``history``."""
    present = [k for k in keys if any(k in h for h in history)]
    plt, fig, axes = _figure(1, max(len(present), 1), scale=2.6)
    for ax, key in zip(axes[0], present):
        ax.axis("on")
        pts = [(h["iter"], h[key]) for h in history if key in h]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], lw=1)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("iteration", fontsize=8)
    return _save(plt, fig, path)
