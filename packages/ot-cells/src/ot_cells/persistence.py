"""A fitted VGFM as a dictionary of strings, numbers and numpy arrays: stored in ``adata.uns`` (round-trips
through h5ad) or in a torch file, and turned back into a model."""

from __future__ import annotations

import json
from importlib.metadata import version
from typing import TYPE_CHECKING, Any, Mapping

import anndata as ad
import numpy as np
import pandas as pd
import torch

from .config import VGFMConfig

if TYPE_CHECKING:
    from .vgfm import VGFM

__all__ = ["to_uns", "from_uns"]

FORMAT = 1


def _arrays(state_dict: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy() for k, v in state_dict.items()}


def _jsonable(value):
    return value.item() if isinstance(value, np.generic) else value


def to_uns(vg: "VGFM") -> dict[str, Any]:
    S = vg.snapshots
    times_map = vg._read_args["times"]
    sizes = vg._read_args["population_sizes"]
    read_args = {
        "times": None if times_map is None else [[_jsonable(k), float(v)] for k, v in times_map.items()],
        "population_sizes": None if sizes is None else (S.relative_mass * 1.0).tolist(),
        "min_cells": vg._read_args["min_cells"],
    }
    field = vg.field
    state = {
        "format": FORMAT,
        "ot_cells_version": version("ot-cells"),
        "config": json.dumps(vg.config.to_dict()),
        "read_args": json.dumps(read_args),
        "time_key": S.time_key,
        "rep": S.rep,
        "n_dims": S.n_dims,
        "times": S.times.copy(),
        "model_times": vg.model_times.copy(),
        "held_out_times": S.times[vg.held_out].copy(),
        "relative_mass": S.relative_mass.copy(),
        "growth_prior_key": vg.growth_prior_key or "",
        "best_epoch": int(vg.best_epoch),
        "velocity_state": _arrays(field.velocity.state_dict()),
        "growth_state": _arrays(field.growth.state_dict()) if field.growth is not None else {},
        "losses": {c: vg.losses[c].to_numpy(dtype=float) for c in vg.losses.columns},
    }
    if vg.mass_offsets is not None:
        state["mass_offsets"] = vg.mass_offsets
    if vg.intervals is not None and vg.config.coupling == "srot":
        state["srot_potentials"] = {str(i): iv.coupling.result.f.numpy() for i, iv in enumerate(vg.intervals)}
    return state


def _read_args(raw: str) -> dict[str, Any]:
    args = json.loads(raw)
    if args["times"] is not None:
        args["times"] = {k: v for k, v in args["times"]}
    return args


def from_uns(cls, state: Mapping[str, Any], adata: ad.AnnData) -> "VGFM":
    """Rebuild a fitted model for ``adata`` (which must have the model's time points)."""
    if int(state.get("format", 0)) != FORMAT:
        raise ValueError(f"unsupported model format {state.get('format')!r}; this ot-cells reads format {FORMAT}")
    config = VGFMConfig.from_dict(json.loads(str(state["config"])))
    args = _read_args(str(state["read_args"]))
    held = np.asarray(state["held_out_times"], dtype=float).ravel()
    vg = cls(adata, time_key=str(state["time_key"]), rep=str(state["rep"]), n_dims=int(state["n_dims"]),
             hold_out=held.tolist() or None, config=config, times=args["times"],
             population_sizes=args["population_sizes"], growth_prior_key=str(state["growth_prior_key"]) or None,
             min_cells=int(args["min_cells"]))
    stored = np.asarray(state["times"], dtype=float)
    if vg.snapshots.times.shape != stored.shape or not np.allclose(vg.snapshots.times, stored):
        raise ValueError(f"the AnnData's time points {vg.snapshots.times.tolist()} differ from the model's "
                         f"{stored.tolist()}")
    field = vg._build_field()
    field.velocity.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in state["velocity_state"].items()})
    if field.growth is not None:
        field.growth.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in state["growth_state"].items()})
    if "mass_offsets" in state:  # files written before the mass calibration have none
        field.set_growth_offset(vg.model_times[vg.kept], np.asarray(state["mass_offsets"], dtype=float))
    vg.field = field.eval()
    vg.best_epoch = int(state["best_epoch"])
    vg.losses = pd.DataFrame({k: np.asarray(v) for k, v in state["losses"].items()})
    vg._potentials = {int(k): torch.as_tensor(np.asarray(v)) for k, v in state.get("srot_potentials", {}).items()}
    return vg
