"""VGFM on AnnData: couplings, the two training stages, ODE inference, evaluation and moscot/wot-style analysis.

    vg = VGFM(adata, time_key="day", rep="X_pca", n_dims=5).fit()
    vg.evaluate()                         # W1 and relative mass error at every observed time
    pred = vg.predict([3.0, 4.5])         # AnnData of weighted predicted cells
    vg.write()                            # adata.obsm["velocity_vgfm"], obs["growth_vgfm"], uns["vgfm"]

The AnnData is read once at construction and never modified, except by :meth:`write` (or ``key_added=``).
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import anndata as ad
import numpy as np
import pandas as pd
import torch

from ot_core import training

from . import analysis, persistence
from .config import VGFMConfig, resolve_config
from .couplings import Coupling, exact_coupling, select_reg_m, srot_coupling
from .flow_matching import Interval, matching_loss, sample_batch
from .metrics import relative_mass_error, w1
from .nets import GrowthNet, VelocityNet
from .ode import WeightedField, integrate
from .refine import refine_epoch
from .snapshots import MIN_CELLS, cell_times, check_free_keys, read_snapshots, representation

__all__ = ["VGFM"]

COUPLING_FIELDS = ("coupling", "epsilon", "reg_m", "scale_cost", "srot_solver", "tol", "max_iter", "auto")


class VGFM:
    """Joint velocity-growth flow matching for a single-cell time course.

    Args:
        adata: cells x features, with collection times in ``obs[time_key]``.
        time_key: numeric obs column (or ordered categorical, or any column with ``times={label: time}``).
        rep: ``obsm`` key of the representation (``"X"`` for ``adata.X``); ``n_dims``: keep its first columns.
        hold_out: observed time(s) to leave out of training (interior times only), for validation.
        config: None (defaults), a preset name (``VGFMConfig.preset``), a dict, or a :class:`VGFMConfig`.
        population_sizes: {time: N_t} if the cell counts are not proportional to the population sizes.
        growth_prior_key: obs column of prior growth factors G_i (> 0) of each cell over its next interval.
        min_cells: fewest cells per time point.
    """

    def __init__(
        self,
        adata: ad.AnnData,
        time_key: str = "time",
        rep: str = "X_pca",
        n_dims: int | None = None,
        hold_out: float | Sequence[float] | None = None,
        config: VGFMConfig | Mapping[str, Any] | str | None = None,
        times: Mapping | None = None,
        population_sizes: Mapping[float, float] | Sequence[float] | None = None,
        growth_prior_key: str | None = None,
        min_cells: int = MIN_CELLS,
    ):
        self.config = resolve_config(config)
        self.snapshots = read_snapshots(adata, time_key, rep, n_dims, times, population_sizes, min_cells)
        self.adata = adata
        self._read_args = {"times": times, "population_sizes": population_sizes, "min_cells": min_cells}
        S = self.snapshots
        held = [] if hold_out is None else [hold_out] if np.isscalar(hold_out) else list(hold_out)
        self.held_out = sorted(S.index_of(t) for t in held)
        for k in self.held_out:
            if k in (0, len(S.times) - 1):
                raise ValueError(f"hold_out={S.times[k]} is the first or last time; only interior times "
                                 f"{S.times[1:-1].tolist()} can be held out")
        self.kept = [k for k in range(len(S.times)) if k not in self.held_out]
        if len(self.kept) < 2:
            raise ValueError("hold_out leaves fewer than two time points to train on")
        self.growth_prior_key = growth_prior_key
        self._prior = self._read_prior(adata, growth_prior_key)
        self.intervals: list[Interval] | None = None
        self._potentials: dict[int, torch.Tensor] = {}  # warm starts for the couplings of a loaded model
        self.field: WeightedField | None = None
        self.losses = pd.DataFrame()
        self.best_epoch = 0

    # ------------------------------------------------------------------------------------------ helpers
    def _read_prior(self, adata, key):
        if key is None:
            return None
        if key not in adata.obs.columns:
            raise KeyError(f"growth_prior_key={key!r} is not a column of adata.obs")
        values = adata.obs[key].to_numpy(dtype=np.float64)
        if not (np.isfinite(values).all() and (values > 0).all()):
            raise ValueError(f"obs[{key!r}] must hold positive finite growth factors")
        return values

    @property
    def model_times(self) -> np.ndarray:
        """The observed times on the model's clock: real times, or 0..K-1 with ``time_mode="index"``."""
        times = self.snapshots.times
        return times.copy() if self.config.time_mode == "real" else np.arange(len(times), dtype=float)

    def to_model_time(self, t) -> np.ndarray:
        """Real time(s) -> the model's clock (identical unless ``time_mode="index"``)."""
        return np.interp(np.asarray(t, dtype=float), self.snapshots.times, self.model_times)

    @property
    def device(self) -> torch.device:
        return torch.device(self.config.device)

    def _require_fit(self):
        if self.field is None:
            raise RuntimeError("the model is not fitted yet; call fit() first (or VGFM.load(...))")

    # ------------------------------------------------------------------------------------------ couplings
    def compute_couplings(self, **overrides: Any) -> list[Interval]:
        """Couplings between consecutive kept snapshots (cached; pass coupling settings to recompute)."""
        unknown = sorted(set(overrides) - set(COUPLING_FIELDS))
        if unknown:
            raise ValueError(f"compute_couplings() takes {COUPLING_FIELDS}, not {unknown}")
        if overrides:
            self.config = self.config.replace(**overrides)
            self.intervals = None
        if self.intervals is not None:
            return self.intervals
        S = self.snapshots
        intervals = []
        for i, (src, tgt) in enumerate(zip(self.kept[:-1], self.kept[1:])):
            t0, t1 = float(self.model_times[src]), float(self.model_times[tgt])
            coupling = self._couple(src, tgt, t1 - t0, self._potentials.get(i))
            intervals.append(Interval(src, tgt, t0, t1, S.X[src], S.X[tgt], coupling))
        self.intervals = intervals
        return intervals

    def _couple(self, src: int, tgt: int, dt: float, init: torch.Tensor | None = None) -> Coupling:
        cfg, S = self.config, self.snapshots
        masses = (float(S.relative_mass[src]), float(S.relative_mass[tgt]))
        n0 = len(S.X[self.kept[0]])
        if cfg.coupling == "exact":
            return exact_coupling(S.X[src], S.X[tgt], dt, masses, n0)
        reg_m = cfg.reg_m
        if cfg.auto:
            reg_m, _ = select_reg_m(S.X[src], S.X[tgt], cfg.epsilon, masses, scale_cost=cfg.scale_cost, seed=cfg.seed)
        prior = None if self._prior is None else torch.from_numpy(self._prior[S.obs_index[src]])
        return srot_coupling(S.X[src], S.X[tgt], dt, masses, n0, epsilon=cfg.epsilon, reg_m=reg_m,
                             scale_cost=cfg.scale_cost, prior=prior, solver=cfg.srot_solver, max_iter=cfg.max_iter,
                             tol=cfg.tol, init=init)

    # ------------------------------------------------------------------------------------------ training
    def _build_field(self) -> WeightedField:
        cfg, d = self.config, self.snapshots.n_dims
        with training.preserve_rng():
            torch.manual_seed(cfg.seed)
            velocity = VelocityNet(d, cfg.hidden, cfg.n_hidden, cfg.activation)
            growth = GrowthNet(d, cfg.hidden, cfg.activation) if cfg.growth else None
        t = self.model_times[self.kept]
        return WeightedField(velocity, growth, t[0], t[-1]).to(self.device)

    def fit(self, checkpoint_dir: str | Path | None = None, resume: bool = False, progress: bool = True,
            **overrides: Any) -> "VGFM":
        """Couplings, stage 1 (flow matching, ``steps``), stage 2 (W1 refinement, ``refine_epochs``).

        ``overrides``: any :class:`VGFMConfig` field (e.g. ``steps=500, seed=1``). ``checkpoint_dir``: write
        atomic checkpoints there (every ``checkpoint_every`` steps and every epoch); ``resume=True`` continues
        from the latest one. Returns self."""
        if overrides:
            changed_coupling = any(k in (*COUPLING_FIELDS, "time_mode") for k in overrides)
            self.config = self.config.replace(**overrides)
            if changed_coupling:
                self.intervals = None
        cfg = self.config
        intervals = self.compute_couplings()
        field = self._build_field()
        generator = torch.Generator().manual_seed(cfg.seed)
        ckpt = training.CheckpointManager(checkpoint_dir, keep_last=2) if checkpoint_dir is not None else None
        state = ckpt.load_latest() if (ckpt is not None and resume) else None
        opt1 = torch.optim.Adam(field.parameters(), lr=cfg.lr)
        records: list[dict] = []
        start = 0
        if state is not None and state["stage"] == 1:
            start = training.restore(state, field=field, optimizer=opt1)
            generator.set_state(state["generator"])
            records = list(state["records"])
        if state is None or state["stage"] == 1:
            self._stage1(field, opt1, intervals, generator, start, records, ckpt, progress)
        self._stage2(field, intervals, generator, records, ckpt, state, progress)
        self.field = field.eval()
        self.losses = pd.DataFrame.from_records(records)
        return self.calibrate() if cfg.calibrate_mass else self

    def _stage1(self, field, opt, intervals, generator, start, records, ckpt, progress):
        cfg = self.config
        for step in training.progress(range(start, cfg.steps), total=cfg.steps, initial=start,
                                      desc="VGFM flow matching", disable=not progress):
            loss, lv, lg = matching_loss(field, sample_batch(intervals, cfg, generator), self.device)
            opt.zero_grad()
            loss.backward()
            opt.step()
            records.append({"stage": 1, "step": step + 1, "loss_v": lv, "loss_g": lg})
            if ckpt is not None and ((step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps):
                ckpt.save(step + 1, field=field, optimizer=opt, stage=1, generator=generator.get_state(),
                          records=records)

    def _stage2(self, field, intervals, generator, records, ckpt, state, progress):
        cfg, S = self.config, self.snapshots
        opt = torch.optim.Adam(field.parameters(), lr=cfg.lr_refine)
        masses = [float(S.relative_mass[iv.target]) for iv in intervals]
        start = 0
        if state is not None and state["stage"] == 2:
            start = training.restore(state, field=field, optimizer=opt) - cfg.steps
            generator.set_state(state["generator"])
            records[:] = list(state["records"])
            best = state["best"]
        elif cfg.refine_epochs > 0:  # the stage-1 model is the epoch-0 candidate
            scores = refine_epoch(field, intervals[0].x, intervals, masses, cfg, None, generator)
            best = {"score": self._selection_score(scores), "state": copy.deepcopy(field.state_dict()), "epoch": 0}
        extra = None
        if cfg.loss_mode == "sum":
            extra = lambda: matching_loss(field, sample_batch(intervals, cfg, generator), self.device)[0]  # noqa: E731
        for epoch in training.progress(range(start, cfg.refine_epochs), total=cfg.refine_epochs, initial=start,
                                       desc="VGFM refinement", disable=not progress):
            refine_epoch(field, intervals[0].x, intervals, masses, cfg, opt, generator, extra)
            per = refine_epoch(field, intervals[0].x, intervals, masses, cfg, None, generator)  # score this state
            for iv, rec in zip(intervals, per):
                records.append({"stage": 2, "step": epoch + 1, "time": float(S.times[iv.target]), **rec})
            score = self._selection_score(per)
            if score < best["score"]:
                best = {"score": score, "state": copy.deepcopy(field.state_dict()), "epoch": epoch + 1}
            if ckpt is not None:
                ckpt.save(cfg.steps + epoch + 1, field=field, optimizer=opt, stage=2,
                          generator=generator.get_state(), records=records, best=best)
        if cfg.refine_epochs > 0:
            field.load_state_dict(best["state"])
            self.best_epoch = best["epoch"]

    def _selection_score(self, records: list[dict]) -> float:
        """The stage-2 loss of the last interval (``select="last"``, original) or its mean over intervals:
        W1, plus ``refine_mass_weight`` (log M_pred - log M)^2 when that weight is > 0."""
        eta = self.config.refine_mass_weight
        losses = [r["w1"] + eta * math.log(r["mass_pred"] / r["mass_obs"]) ** 2 for r in records]
        return losses[-1] if self.config.select == "last" else float(np.mean(losses))

    # ------------------------------------------------------------------------------------------ calibration
    @property
    def mass_offsets(self) -> np.ndarray | None:
        """c_k (per model time unit) added to g on each interval between consecutive kept times, or None."""
        rates = None if self.field is None else self.field.offset_rates
        return None if rates is None else rates.cpu().double().numpy()

    def calibrate(self) -> VGFM:
        """Mass calibration: add a constant c_k to g on the k-th interval between kept times so that the dopri5
        rollout of all first-time cells (the one :meth:`evaluate` scores) has the observed relative mass M at
        every kept time. A constant moves no cell and scales the rollout mass after t_k+1 by exp(c_k dt_k), so
        with r_k = log(M_k / M_pred(t_k)) (r_0 = 0) on the current model, c_k += (r_k+1 - r_k) / dt_k in closed
        form from one rollout. Held-out masses are not used (the gap interval is fitted to its far end); c keeps
        its first and last values before the first and after the last kept time. Sets ``calibrate_mass=True``
        in the config. Returns self."""
        self._require_fit()
        S, kept = self.snapshots, self.kept
        knots = self.model_times[kept]
        if self.mass_offsets is None:  # c = 0 with its jumps: the integrator restarts there before and after
            self.field.set_growth_offset(knots, np.zeros(len(knots) - 1))
        _, lws = self.rollout(S.times[kept[1:]])
        r = np.log(S.relative_mass[kept]) - np.concatenate([[0.0], torch.logsumexp(lws.double(), 1).numpy()])
        self.field.set_growth_offset(knots, self.mass_offsets + np.diff(r) / np.diff(knots))
        self.config = self.config.replace(calibrate_mass=True)
        return self

    # ------------------------------------------------------------------------------------------ inference
    def velocity(self, X, t) -> np.ndarray:
        """v(x, t) (N, d) at cells X (N, d) and real time(s) t (scalar or (N,)), per model time unit."""
        return self._net_eval("velocity_at", X, t)

    def growth(self, X, t) -> np.ndarray:
        """g(x, t) (N,): d log(mass) / dt at cells X and real time(s) t."""
        return self._net_eval("growth_at", X, t)

    def _net_eval(self, fn, X, t) -> np.ndarray:
        self._require_fit()
        X = torch.as_tensor(np.asarray(X), dtype=torch.float32, device=self.device)
        tt = torch.as_tensor(self.to_model_time(t), dtype=torch.float32, device=self.device)
        with torch.no_grad():
            return getattr(self.field, fn)(X, tt).cpu().numpy()

    def _start(self, start_time, n_cells, seed):
        """Initial cells and log weights at a kept time: (x (N, d), log w (N,)), total weight M_k."""
        S = self.snapshots
        k = self.kept[0] if start_time is None else S.index_of(start_time)
        if k in self.held_out:
            raise ValueError(f"start_time={start_time} is held out; start from a training time")
        X = S.X[k]
        if n_cells is not None and n_cells < len(X):
            X = X[torch.randperm(len(X), generator=torch.Generator().manual_seed(seed))[:n_cells]]
        log_w = torch.full((len(X),), math.log(S.relative_mass[k] / len(X)))
        return k, X, log_w

    def rollout(self, times, start_time=None, n_cells=None, method="dopri5", seed=0):
        """Integrate the cells of ``start_time`` (default: first kept time) to real ``times`` (sorted either way).
        Returns (x (T, N, d), log w (T, N)) as tensors; weights sum to the predicted relative mass."""
        self._require_fit()
        k, X, log_w = self._start(start_time, n_cells, seed)
        grid = self.to_model_time(np.concatenate([[self.snapshots.times[k]], np.atleast_1d(times)]))
        with torch.no_grad():
            xs, lws = integrate(self.field, X.float().to(self.device), log_w.float().to(self.device), grid,
                                method=method, step=0.01 * max(np.ptp(grid), 1e-12) if method != "dopri5" else None)
        return xs[1:].cpu(), lws[1:].cpu()

    def predict(self, times, n_cells: int | None = None, start_time: float | None = None,
                method: str = "dopri5", seed: int = 0) -> ad.AnnData:
        """Predicted cells at real ``times``: ``obsm[rep]`` positions, ``obs["time"]``, ``obs["mass"]`` (relative mass
        carried by each cell; sums to M_pred(t)), ``obs["weight"]`` (normalised per time),
        ``uns["relative_mass_pred"]``."""
        times = np.atleast_1d(np.asarray(times, dtype=float))
        xs, lws = self.rollout(times, start_time, n_cells, method, seed)
        w = lws.double().exp().numpy()
        n = xs.shape[1]
        obs = pd.DataFrame({"time": np.repeat(times, n), "mass": w.ravel(),
                            "weight": (w / w.sum(1, keepdims=True)).ravel()})
        obs.index = [f"pred{i}" for i in range(len(obs))]
        out = ad.AnnData(X=xs.reshape(-1, xs.shape[-1]).numpy(), obs=obs)
        out.obsm[self.snapshots.rep] = out.X.copy()
        out.uns["relative_mass_pred"] = {"time": times, "mass": w.sum(1)}
        return out

    def trajectories(self, n_cells: int = 100, n_bins: int = 100, start_time: float | None = None, seed: int = 0):
        """(times (T,), X (T, N, d), W (T, N)) on ``n_bins`` evenly spaced real times over the kept range."""
        S = self.snapshots
        t0 = S.times[self.kept[0]] if start_time is None else float(start_time)
        times = np.linspace(t0, S.times[self.kept[-1]], n_bins)
        xs, lws = self.rollout(times[1:], start_time, n_cells, seed=seed)
        k, X, log_w = self._start(start_time, n_cells, seed)
        X_all = torch.cat([X.float()[None], xs])
        W_all = torch.cat([log_w.float()[None], lws]).exp()
        return times, X_all.numpy(), W_all.numpy()

    def evaluate(self, times: Sequence[float] | None = None, method: str = "dopri5") -> pd.DataFrame:
        """W1 (exact, Euclidean) and relative mass error of the rollout of all first-time cells at each observed
        time after the first (default), evaluated without gradients. Columns: time, w1, rme, mass_pred,
        mass_obs, held_out."""
        S = self.snapshots
        ks = [S.index_of(t) for t in times] if times is not None else list(range(1, len(S.times)))
        xs, lws = self.rollout(S.times[ks], method=method)
        rows = []
        for k, x, lw in zip(ks, xs, lws):
            mass = float(lw.double().exp().sum())
            rows.append({"time": float(S.times[k]), "w1": w1(x, S.X[k], torch.softmax(lw.double(), 0)),
                         "rme": relative_mass_error(mass, S.relative_mass[k]), "mass_pred": mass,
                         "mass_obs": float(S.relative_mass[k]), "held_out": k in self.held_out})
        return pd.DataFrame(rows)

    # ------------------------------------------------------------------------------------------ analysis
    def push(self, source: float, target: float, data=None, subset=None, method: str = "plan",
             normalize: bool = True) -> np.ndarray:
        """Descendants at ``target`` of a mass on the cells of ``source``: ``data`` is None (all cells), an obs key
        (numeric values, or categories selected by ``subset``) or an array over the source cells. Returns an array
        over the target cells (sums to 1 with ``normalize``). ``method``: "plan" (chained couplings) or "flow"
        (the learned ODE, deposited on each predicted cell's nearest observed cell)."""
        U = analysis.source_data(self.adata, self.snapshots, source, data, subset)
        return analysis.finish(self._transport(source, target, U[:, None], method)[:, 0], normalize)

    def pull(self, source: float, target: float, data=None, subset=None, method: str = "plan",
             normalize: bool = True) -> np.ndarray:
        """Ancestors at ``source`` of a mass on the cells of ``target`` (same conventions as :meth:`push`)."""
        U = analysis.source_data(self.adata, self.snapshots, target, data, subset)
        return analysis.finish(self._transport(target, source, U[:, None], method)[:, 0], normalize)

    def cell_transition(self, source: float, target: float, source_groups: str, target_groups: str,
                        forward: bool = True, method: str = "plan") -> pd.DataFrame:
        """Mass flowing from each ``source_groups`` category at ``source`` to each ``target_groups`` category at
        ``target`` (obs keys). ``forward=True``: rows sum to 1 (fates of each source group); False: columns sum to
        1 (ancestry of each target group)."""
        U, src_names = analysis.one_hot(self.adata, self.snapshots, source, source_groups)
        moved = self._transport(source, target, U, method)
        V, tgt_names = analysis.one_hot(self.adata, self.snapshots, target, target_groups)
        table = moved.T @ V
        table = table / table.sum(1, keepdims=True) if forward else table / table.sum(0, keepdims=True)
        return pd.DataFrame(table, index=pd.Index(src_names, name=source_groups),
                            columns=pd.Index(tgt_names, name=target_groups))

    def _transport(self, t_from: float, t_to: float, U: np.ndarray, method: str) -> np.ndarray:
        S = self.snapshots
        k_from, k_to = S.index_of(t_from), S.index_of(t_to)
        if method == "plan":
            chain = analysis.chain(self.compute_couplings(), k_from, k_to)
            return analysis.plan_transport(chain, U, forward=k_to > k_from)
        if method == "flow":
            self._require_fit()
            return analysis.flow_transport(self, k_from, k_to, U)
        raise ValueError(f"method={method!r}; use 'plan' or 'flow'")

    # ------------------------------------------------------------------------------------------ persistence
    def write(self, adata: ad.AnnData | None = None, key_added: str = "vgfm", overwrite: bool = False) -> None:
        """Write ``obsm[f"velocity_{key_added}"]`` (v at each cell's own time), ``obs[f"growth_{key_added}"]``
        (per unit time) and the model in ``uns[key_added]`` (restore with ``VGFM.load(adata)``). Existing keys
        are only replaced with ``overwrite=True``."""
        self._require_fit()
        adata = self.adata if adata is None else adata
        check_free_keys(adata, {"obsm": [f"velocity_{key_added}"], "obs": [f"growth_{key_added}"],
                                "uns": [key_added]}, overwrite)
        X = representation(adata, self.snapshots.rep, self.snapshots.n_dims)
        t = cell_times(adata, self.snapshots.time_key, self._read_args["times"])
        adata.obsm[f"velocity_{key_added}"] = self.velocity(X, t)
        adata.obs[f"growth_{key_added}"] = self.growth(X, t)
        adata.uns[key_added] = persistence.to_uns(self)

    def save(self, path: str | Path) -> Path:
        """Save the fitted model (networks, settings, time course metadata) to ``path`` atomically."""
        self._require_fit()
        return training.atomic_save(persistence.to_uns(self), path)

    @classmethod
    def load(cls, source: ad.AnnData | str | Path, adata: ad.AnnData | None = None, key: str = "vgfm") -> "VGFM":
        """Restore a model from ``adata.uns[key]`` (``source`` an AnnData) or from a file written by :meth:`save`
        (then ``adata`` is the data it was fitted on, or one with the same time key and representation)."""
        if isinstance(source, ad.AnnData):
            if key not in source.uns:
                raise KeyError(f"adata.uns has no fitted model under {key!r}; keys: {list(source.uns.keys())}")
            return persistence.from_uns(cls, source.uns[key], source)
        if adata is None:
            raise ValueError("VGFM.load(path, adata): pass the AnnData the model describes")
        return persistence.from_uns(cls, torch.load(Path(source), weights_only=False), adata)
