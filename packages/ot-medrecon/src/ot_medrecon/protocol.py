"""The retrospective -> prospective gap protocol (E1 MRI, E2 CT; project design, spec §5.3).

A supervised U-Net trained on pairs from the *nominal* simulator versus KIDOT trained on unpaired *true*
("prospective") measurements and clean images; all methods are tested on held-out true measurements.

Splits (disjoint): ``S_img`` clean images (KIDOT's target distribution and the source of the baseline's
pairs), ``S_val`` (validation with ground truth, through the true simulator by default, ``validation=
"nominal"`` for the retrospective one; the probe logged during training and the only split to tune on),
``S_meas`` (images only used to make the true measurements KIDOT trains on; their ground truth is never used),
``S_test`` (held-out true measurements with ground truth). MRI: the 20 Deep-ADMM-Net chest images in sorted
order (S_img im-01..im-06, S_val im-07, im-08, S_meas im-09..im-13 incl. im-100, S_test im-14..im-19), or
ellipse phantoms when the data are absent.
CT: ellipse phantoms with disjoint seed ranges. The oracles ("oracle": the unrolled flow, "oracle_unet": the
U-Net) are trained with L1 on *true*-simulator pairs of the S_meas images, i.e. with the ground truth and the
acquisition model that KIDOT never sees: an upper bound for a method of that size and budget, never a competitor.
MRI options: ``augment_copies`` / ``brain_in_clean`` augment the S_img and S_meas pools (the U-Net's pairs
come from the same augmented S_img), ``null_space`` restricts KIDOT's learned drift to the unmeasured k-space,
``cost_split`` holds measured lines out of KIDOT's path input for its data cost, ``start="tv"`` / ``"phase_tv"``
starts KIDOT's path at the data-consistent / phase-constrained TV reconstruction, which are also the classical
compressed-sensing references "classical_tv" / "classical_phase_tv" (:data:`METHOD_STARTS`).

Per run results are cached as JSON under ``out/runs`` so an interrupted sweep resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from ot_core import training

from .baselines import SupervisedUNet, SupervisedUnrolled
from .classical import check_start, classical_reconstruction
from .datasets import area_resize, augment_sources, deep_admm_net, ellipse_phantoms, shared_data_root
from .engine import Measurements, SimulatedPairs
from .kidot import KIDOT
from .metrics import ReconMetrics
from .nets import preset
from .simulate import NominalCT, NominalMRI, ProspectiveCT, ProspectiveMRI

__all__ = ["SETTINGS", "ProtocolConfig", "build_data", "train_method", "run_method", "gap_benchmark",
           "summarise"]

#: The four acquisition settings of the issue: MRI 4x / 8x Cartesian, CT sparse-view (60 views) and low dose.
SETTINGS = {
    "mri4x": {"modality": "mri", "acceleration": 4},
    "mri8x": {"modality": "mri", "acceleration": 8},
    "ct-sparse60": {"modality": "ct", "views": 60, "dose": 1.0, "nominal_snr_db": 40.0},
    "ct-lowdose": {"modality": "ct", "views": 120, "dose": 0.05, "nominal_snr_db": 30.0},
}

METHODS = ("classical", "classical_tv", "classical_phase_tv", "supervised_unet", "supervised_unet_tv",
           "supervised_unet_phase_tv", "supervised_unrolled", "kidot", "kidot_sup", "oracle", "oracle_unet")

#: The start image of the classical and U-Net methods that do not start from S(y) (single-coil MRI only).
METHOD_STARTS = {"classical_tv": "tv", "classical_phase_tv": "phase_tv", "supervised_unet_tv": "tv",
                 "supervised_unet_phase_tv": "phase_tv"}


@dataclass
class ProtocolConfig:
    """One protocol run. ``preset`` sizes the networks (``size`` overrides its image size); ``n_iter`` and
    ``batch_size`` default to the preset's; every method gets the same number of updates and batch size."""

    setting: str = "mri4x"
    level: int = 3
    preset: str = "cpu32"
    size: int | None = None
    n_iter: int | None = None
    batch_size: int | None = None
    seeds: tuple[int, ...] = (0, 1, 2)
    methods: tuple[str, ...] = ("classical", "supervised_unet", "kidot")
    meas_realisations: int = 16  # true measurements per S_meas image (MRI)
    test_realisations: int = 5  # MRI test cases per S_test image (CT: 1)
    ct_pool: tuple[int, int, int, int] = (256, 256, 200, 32)  # S_img, S_meas, S_test, S_val sizes (CT)
    lr_supervised: float = 1e-3
    lr_flow: float = 2e-4
    lr_critic: float = 4e-4
    cost_weight: float = 0.3
    kinetic_weight: float = 0.2
    n_critic: int = 1
    sup_weight: float = 10.0  # λ_sup of "kidot_sup" (KIDOT + L1 on the baselines' nominal pairs)
    patch_critic: bool = False
    null_space: bool = False  # KIDOT's drift only in the null space of A (single-coil MRI: keeps measured k-space)
    cost_split: float = 0.0  # MRI: fraction of measured lines KIDOT's path cost holds out from the path's input
    start: str = "measurement"  # KIDOT's path start: S(y), or (single-coil MRI) "tv" / "phase_tv" (classical module)
    physics: bool = True  # KIDOT's gradient step A*(A I - y) in the velocity (False: the spec's E4 ablation)
    validation: str = "true"  # S_val (the training probe, the tuning split) through the "true" or "nominal" simulator
    augment_copies: int = 0  # MRI: augmented copies of each S_img source; > 0 also augments each S_meas realisation
    brain_in_clean: bool = False  # MRI: add the 2 Deep-ADMM-Net brain images to S_img
    data_root: str | None = None
    embedded: bool = False  # use the embedded phantoms even when the MR data are present
    device: str = "cpu"

    def __post_init__(self):
        if self.setting not in SETTINGS:
            raise ValueError(f"setting={self.setting!r}; use one of {sorted(SETTINGS)}")
        unknown = set(self.methods) - set(METHODS)
        if unknown:
            raise ValueError(f"unknown methods {sorted(unknown)}; use {METHODS}")
        if self.validation not in ("true", "nominal"):
            raise ValueError(f"validation={self.validation!r}; use 'true' or 'nominal'")
        if self.augment_copies < 0:
            raise ValueError(f"augment_copies must be >= 0, got {self.augment_copies}")
        check_start(self.start)
        uses_tv = self.start != "measurement" or set(METHOD_STARTS) & set(self.methods)
        if self.modality == "ct" and uses_tv:
            raise ValueError("the TV reconstructions (start='tv' / 'phase_tv', methods '*_tv') need single-coil MRI; "
                             f"setting {self.setting!r} is CT")
        self.seeds = tuple(self.seeds)
        self.methods = tuple(self.methods)

    @property
    def modality(self) -> str:
        return SETTINGS[self.setting]["modality"]

    @property
    def image_size(self) -> int:
        return self.size or preset(self.preset).size

    def training_budget(self) -> tuple[int, int]:
        spec = preset(self.preset)
        return self.n_iter or spec.n_iter, self.batch_size or spec.batch_size


# ------------------------------------------------------------------------------------------ data
def _simulators(cfg: ProtocolConfig):
    s, size = SETTINGS[cfg.setting], cfg.image_size
    if cfg.modality == "mri":
        return NominalMRI(size, s["acceleration"]), ProspectiveMRI(size, cfg.level, s["acceleration"])
    return (NominalCT(size, s["views"], snr_db=s["nominal_snr_db"]),
            ProspectiveCT(size, cfg.level, s["views"], dose=s["dose"], snr_db=s["nominal_snr_db"]))


def _mr_pools(cfg: ProtocolConfig, root) -> tuple[dict[str, torch.Tensor], str]:
    """The Deep-ADMM-Net splits at twice the working size; with ``augment_copies`` the S_img sources (and the
    brain images with ``brain_in_clean``) get that many augmented copies and every S_meas realisation its own
    augmented copy (crops / rescaling of the 256² sources, flips, 90° rotations, intensity scale)."""
    size2 = 2 * cfg.image_size
    load = lambda subset, size: deep_admm_net(root, subset, size)[0]
    chest = load("chest", size2)
    pools = {"val": chest[6:8], "test": chest[14:20]}
    if cfg.augment_copies:
        full = load("chest", 256)
        img = torch.cat([full[0:6], load("brain", 256)]) if cfg.brain_in_clean else full[0:6]
        pools["img"] = augment_sources(img, cfg.augment_copies, size2, torch.Generator().manual_seed(4_000))
        pools["meas"] = augment_sources(full[8:14], cfg.meas_realisations, size2,
                                        torch.Generator().manual_seed(5_000))
    else:
        pools["img"] = torch.cat([chest[0:6], load("brain", size2)]) if cfg.brain_in_clean else chest[0:6]
        pools["meas"] = chest[8:14].repeat_interleave(cfg.meas_realisations, 0)
    source = "deep-admm-net chest" + (" + brain (S_img)" if cfg.brain_in_clean else "")
    return pools, source + (f", {cfg.augment_copies} augmented copies" if cfg.augment_copies else "")


def _pools(cfg: ProtocolConfig) -> tuple[dict[str, torch.Tensor], str]:
    """Source images at twice the working size (the 2x-grid components need them); phantoms are rendered 2x
    supersampled at that size (4x at the working size). MRI S_meas holds one image per true realisation."""
    size2 = 2 * cfg.image_size
    root = cfg.data_root or shared_data_root()
    if cfg.modality == "mri" and root is not None and size2 <= 256 and not cfg.embedded:
        try:
            return _mr_pools(cfg, root)
        except FileNotFoundError:
            pass
    n_img, n_meas, n_test, n_val = cfg.ct_pool if cfg.modality == "ct" else (64, 64, 6, 8)
    sizes = {"img": (n_img, 0), "meas": (n_meas, 10_000), "test": (n_test, 20_000), "val": (n_val, 30_000)}
    pools = {k: ellipse_phantoms(n, size2, seed=seed, supersample=2) for k, (n, seed) in sizes.items()}
    if cfg.modality == "mri":
        pools["meas"] = pools["meas"].repeat_interleave(cfg.meas_realisations, 0)
    return pools, "ellipse phantoms"


def build_data(cfg: ProtocolConfig) -> dict:
    """Clean S_img (working size), nominal pairs (on the fly), true S_meas measurements (no GT) and, for the
    oracles, true pairs of the S_meas images (on the fly), S_val
    (``cfg.validation`` simulator) and true S_test measurements with GT. Measurement seeds are fixed
    (independent of the training seed)."""
    nominal, true = _simulators(cfg)
    pools, source = _pools(cfg)
    repeat = (lambda x, r: x.repeat_interleave(r, 0)) if cfg.modality == "mri" else (lambda x, r: x)
    sim = lambda s, x, seed: Measurements.from_simulation(s(x, torch.Generator().manual_seed(seed)))  # noqa: E731
    meas = sim(true, pools["meas"], 1_000)
    return {
        "clean": area_resize(pools["img"], cfg.image_size),
        "pairs": SimulatedPairs(pools["img"], nominal),
        "measurements": Measurements(meas.y, meas.operator),  # the ground truth is dropped here
        "true_pairs": SimulatedPairs(pools["meas"], true),  # the oracles' training data only
        "val": sim(true if cfg.validation == "true" else nominal, repeat(pools["val"], cfg.test_realisations),
                   2_000),
        "test": sim(true, repeat(pools["test"], cfg.test_realisations), 3_000),
        "source": source,
    }


# ------------------------------------------------------------------------------------------ runs
def train_method(method: str, cfg: ProtocolConfig, data: dict, seed: int, out: Path | None = None,
                 eval_every: int | None = None):
    """Train ``method`` (any of :data:`METHODS` but the classical ones) on ``data`` of
    :func:`build_data` with S_val as the probe (scored every ``eval_every``, default n_iter / 5 iterations);
    returns (model, history)."""
    n_iter, batch = cfg.training_budget()
    training.seed_everything(seed)
    kw = dict(n_iter=n_iter, batch_size=batch, seed=seed, probe=data["val"], out=out, progress=False,
              eval_every=eval_every or max(n_iter // 5, 1), checkpoint_every=max(n_iter // 5, 1))
    if method in ("kidot", "kidot_sup"):
        paired = data["pairs"] if method == "kidot_sup" else None
        model = KIDOT.from_preset(cfg.preset, cfg.modality, cfg.image_size, lr_flow=cfg.lr_flow,
                                  lr_critic=cfg.lr_critic, cost_weight=cfg.cost_weight,
                                  kinetic_weight=cfg.kinetic_weight, n_critic=cfg.n_critic,
                                  patch_critic=cfg.patch_critic, null_space=cfg.null_space,
                                  cost_split=cfg.cost_split, start=cfg.start, physics=cfg.physics,
                                  sup_weight=cfg.sup_weight if paired else 0.0)
        history = model.to(cfg.device).fit(data["measurements"], data["clean"], paired=paired, **kw)
    else:
        if method.startswith("supervised_unet") or method == "oracle_unet":
            model = SupervisedUNet.from_preset(cfg.preset, cfg.modality, lr=cfg.lr_supervised,
                                               start=METHOD_STARTS.get(method, "measurement"))
        else:
            model = SupervisedUnrolled.from_preset(cfg.preset, cfg.modality, lr=cfg.lr_supervised)
        pairs = data["true_pairs"] if method.startswith("oracle") else data["pairs"]
        history = model.to(cfg.device).fit(pairs, **kw)
    return model, history


def run_method(method: str, cfg: ProtocolConfig, data: dict, seed: int, out: Path | None = None,
               return_model: bool = False):
    """Train ``method`` with ``seed`` (the classical reconstruction needs none) and score it on S_test;
    returns per-case metric lists, the training history and the wall time (and the model, or None for the
    classical reconstructions, with ``return_model=True``; their images are then in "prediction")."""
    started = time.time()
    test = data["test"]
    model = None
    if method.startswith("classical"):
        start = METHOD_STARTS.get(method, "measurement")
        pred, history = classical_reconstruction(test.y, test.operator, start), []
    else:
        model, history = train_method(method, cfg, data, seed, out)
        pred = model.reconstruct(test.y, test.operator)
    scores = ReconMetrics()(pred, test.gt, test.operator, test.y)
    result = {"method": method, "seed": seed, "per_case": {k: v.tolist() for k, v in scores.items()},
              "history": history, "seconds": time.time() - started}
    if not return_model:
        return result
    if model is None:
        result["prediction"] = pred
    return result, model


def gap_benchmark(cfg: ProtocolConfig, out: str | Path) -> dict:
    """Run every (method, seed) of ``cfg`` (cached under ``out/runs``), then :func:`summarise` into
    ``out/metrics.json``."""
    out = Path(out)
    tag = f"{cfg.setting}-L{cfg.level}-{cfg.preset}"
    data = build_data(cfg)
    runs = []
    for method in cfg.methods:
        for seed in (cfg.seeds if not method.startswith("classical") else cfg.seeds[:1]):
            path = out / "runs" / f"{tag}-{method}-seed{seed}.json"
            settings = _run_settings(cfg, method)
            if path.is_file():
                runs.append(_cached_run(path, settings))
                continue
            result = run_method(method, cfg, data, seed, out / "checkpoints" / f"{tag}-{method}-seed{seed}")
            training.atomic_write_json({**result, "settings": settings}, path)
            runs.append(result)
    summary = summarise(runs, reference="kidot")
    summary.update(config=dataclasses.asdict(cfg), data_source=data["source"], n_test_cases=len(data["test"]))
    training.atomic_write_json(summary, out / f"metrics-{tag}.json")
    return summary


#: Settings that only KIDOT's training reads: a baseline's cached run stays valid when they change.
KIDOT_SETTINGS = ("lr_flow", "lr_critic", "cost_weight", "kinetic_weight", "n_critic", "sup_weight", "patch_critic",
                  "null_space", "cost_split", "start", "physics")


def _run_settings(cfg: ProtocolConfig, method: str) -> dict:
    """The settings a cached run of ``method`` depends on (not the seeds, methods and device; KIDOT's own
    settings only for KIDOT), as stored in JSON."""
    skip = {"seeds", "methods", "device"} | (set() if method.startswith("kidot") else set(KIDOT_SETTINGS))
    settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in skip}
    return json.loads(json.dumps(settings))


def _cached_run(path: Path, settings: dict) -> dict:
    """A cached run, refused when it was computed with other settings (it would be summarised as these). A
    setting the run does not store was added later; the run had its default behaviour."""
    run = json.loads(path.read_text())
    stored = run.get("settings")
    if stored is None:
        raise ValueError(f"{path} stores no settings (written before runs carried them), so it cannot be checked "
                         "against these settings; pass another out folder")
    defaults = json.loads(json.dumps({f.name: f.default for f in dataclasses.fields(ProtocolConfig)}))
    changed = sorted(k for k in settings if stored.get(k, defaults.get(k)) != settings[k])
    if changed:
        raise ValueError(f"{path} was computed with other settings ({', '.join(changed)}); pass another out "
                         "folder for these settings")
    return run


def summarise(runs: list[dict], reference: str = "kidot") -> dict:
    """Per method: mean ± std over seeds of the case-mean PSNR / SSIM / NMSE; margins of ``reference`` over each
    other method (per-case values averaged over seeds first) with one-sided Wilcoxon signed-rank p-values."""
    from scipy.stats import wilcoxon

    by_method: dict[str, list[dict]] = {}
    for run in runs:
        by_method.setdefault(run["method"], []).append(run)
    methods = {}
    case_means = {}
    for name, rs in by_method.items():
        entry = {"seeds": [r["seed"] for r in rs], "seconds": sum(r["seconds"] for r in rs)}
        for metric in ("psnr", "ssim", "nmse"):
            per_seed = torch.tensor([r["per_case"][metric] for r in rs], dtype=torch.float64)
            seed_means = per_seed.mean(1)
            entry[metric] = {"mean": float(seed_means.mean()), "std": float(seed_means.std(unbiased=False)),
                             "per_seed": seed_means.tolist()}
            case_means[(name, metric)] = per_seed.mean(0)
        methods[name] = entry
    margins = {}
    if reference in by_method:
        for name in by_method:
            if name == reference:
                continue
            margins[name] = {}
            for metric in ("psnr", "ssim"):
                diff = case_means[(reference, metric)] - case_means[(name, metric)]
                p = float(wilcoxon(diff.numpy(), alternative="greater").pvalue) if bool((diff != 0).any()) else 1.0
                margins[name][metric] = {"margin": float(diff.mean()), "wilcoxon_p_greater": p,
                                         "wins": int((diff > 0).sum()), "cases": int(diff.numel())}
    return {"methods": methods, "margins_of_" + reference: margins}
