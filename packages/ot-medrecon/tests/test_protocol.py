"""The gap protocol: disjoint splits, cached runs, the summary statistics."""

import dataclasses
import json

import pytest
import torch
from ot_medrecon import Measurements
from ot_medrecon.baselines import SupervisedUNet, SupervisedUnrolled
from ot_medrecon.classical import classical_reconstruction
from ot_medrecon.datasets import area_resize, ellipse_phantoms, shared_data_root
from ot_medrecon.metrics import ReconMetrics
from ot_medrecon.protocol import (
    ProtocolConfig,
    build_data,
    gap_benchmark,
    run_method,
    summarise,
    train_method,
)
from ot_medrecon.simulate import NominalCT, ProspectiveMRI


def _tiny(**kw):
    base = dict(setting="ct-sparse60", preset="test", n_iter=2, batch_size=2, seeds=(0,), ct_pool=(8, 8, 4, 2),
                methods=("classical", "supervised_unet", "kidot"))
    base.update(kw)
    return ProtocolConfig(**base)


def test_ct_splits_are_disjoint_and_measurements_have_no_ground_truth():
    data = build_data(_tiny())
    assert data["measurements"].gt is None
    assert data["test"].gt.shape == (4, 1, 32, 32) and data["clean"].shape == (8, 1, 32, 32)
    flat = lambda x: {tuple(v.flatten().tolist()) for v in x}
    assert not flat(data["clean"]) & flat(data["test"].gt)


def test_validation_split_goes_through_the_chosen_simulator():
    true_val, nominal_val = build_data(_tiny())["val"], build_data(_tiny(validation="nominal"))["val"]
    assert torch.equal(true_val.gt, nominal_val.gt) and not torch.allclose(true_val.y, nominal_val.y)
    model = NominalCT(32, 60).operator  # nominal: A x + 40 dB noise; true (level 3): counts, COR offset, ...
    relative_misfit = lambda d: float((d.y - model.A(d.gt)).norm() / d.y.norm())
    assert relative_misfit(nominal_val) < 0.02 < relative_misfit(true_val)


def test_oracles_train_on_true_pairs_of_the_measurement_images():
    data = build_data(_tiny())
    pairs = data["true_pairs"].sample(4, torch.Generator().manual_seed(0))
    flat = lambda x: {tuple(v.flatten().tolist()) for v in x}
    assert not flat(area_resize(data["true_pairs"].images, 32)) & (flat(data["clean"]) | flat(data["test"].gt))
    model = NominalCT(32, 60).operator
    assert float((pairs.y - model.A(pairs.gt)).norm() / pairs.y.norm()) > 0.02  # the true simulator, not A_sim
    data["pairs"] = None  # the nominal pairs must not be used by the oracles
    oracle, _ = train_method("oracle_unet", _tiny(), data, seed=0)
    unrolled, _ = train_method("oracle", _tiny(), data, seed=0)
    assert isinstance(oracle, SupervisedUNet) and isinstance(unrolled, SupervisedUnrolled)


def test_physics_setting_reaches_the_kidot_flow():
    cfg = _tiny(physics=False)
    model, _ = train_method("kidot", cfg, build_data(cfg), seed=0)
    assert model.flow.physics is False  # the E4 ablation: no gradient step A*(A I - y) in the velocity


@pytest.mark.skipif(shared_data_root() is None, reason="../shared/data/medrecon is absent")
def test_mri_augmented_pools_keep_the_held_out_splits():
    base = build_data(ProtocolConfig(setting="mri4x", meas_realisations=2, test_realisations=1))
    aug = build_data(ProtocolConfig(setting="mri4x", meas_realisations=2, test_realisations=1, augment_copies=3,
                                    brain_in_clean=True))
    assert base["clean"].shape == (6, 1, 32, 32) and aug["clean"].shape == ((6 + 2) * 3, 1, 32, 32)
    assert len(base["measurements"]) == len(aug["measurements"]) == 6 * 2
    assert torch.equal(base["test"].gt, aug["test"].gt) and torch.equal(base["val"].gt, aug["val"].gt)
    assert not torch.equal(base["measurements"].y, aug["measurements"].y)  # each realisation its own copy
    assert len(aug["pairs"]) == 24 and "augmented" in aug["source"] and "brain" in aug["source"]


def test_gap_benchmark_caches_runs_and_summarises(tmp_path):
    cfg = _tiny()
    summary = gap_benchmark(cfg, tmp_path)
    assert set(summary["methods"]) == {"classical", "supervised_unet", "kidot"}
    assert set(summary["margins_of_kidot"]) == {"classical", "supervised_unet"}
    runs = sorted((tmp_path / "runs").glob("*.json"))
    assert len(runs) == 3
    stamp = [p.stat().st_mtime_ns for p in runs]
    again = gap_benchmark(cfg, tmp_path)  # cached: nothing is retrained
    assert [p.stat().st_mtime_ns for p in runs] == stamp
    assert again["methods"]["kidot"]["psnr"] == summary["methods"]["kidot"]["psnr"]
    assert json.loads((tmp_path / "metrics-ct-sparse60-L3-test.json").read_text())["n_test_cases"] == 4
    with pytest.raises(ValueError, match="other settings \\(kinetic_weight\\)"):  # stale cache never reused
        gap_benchmark(dataclasses.replace(cfg, kinetic_weight=cfg.kinetic_weight + 0.1), tmp_path)
    baselines = dataclasses.replace(cfg, kinetic_weight=cfg.kinetic_weight + 0.1, methods=("classical",
                                                                                          "supervised_unet"))
    gap_benchmark(baselines, tmp_path)  # KIDOT's settings do not invalidate the baselines' runs
    assert [p.stat().st_mtime_ns for p in runs] == stamp
    kidot_run = next(p for p in runs if "-kidot-" in p.name)
    record = json.loads(kidot_run.read_text())
    del record["settings"]["cost_split"]  # a run from before the option existed had its default behaviour
    kidot_run.write_text(json.dumps(record))
    gap_benchmark(cfg, tmp_path)
    with pytest.raises(ValueError, match="other settings \\(cost_split\\)"):
        gap_benchmark(dataclasses.replace(cfg, cost_split=0.3), tmp_path)
    del record["settings"]  # a run from before runs carried settings cannot be checked: refused
    kidot_run.write_text(json.dumps(record))
    with pytest.raises(ValueError, match="stores no settings"):
        gap_benchmark(cfg, tmp_path)
    with pytest.raises(ValueError, match="other settings \\(lr_supervised\\)"):
        gap_benchmark(dataclasses.replace(baselines, lr_supervised=0.5), tmp_path)


def test_summary_statistics_by_hand():
    runs = [{"method": "kidot", "seed": s, "seconds": 1.0,
             "per_case": {"psnr": [30.0 + s, 31.0, 32.0, 33.0, 34.0, 35.0], "ssim": [0.9] * 6, "nmse": [0.1] * 6}}
            for s in (0, 1)]
    runs.append({"method": "base", "seed": 0, "seconds": 1.0,
                 "per_case": {"psnr": [29.0, 30.0, 31.0, 32.0, 33.0, 34.0], "ssim": [0.8] * 6, "nmse": [0.2] * 6}})
    out = summarise(runs)
    assert out["methods"]["kidot"]["psnr"]["mean"] == pytest.approx(32.5 + 0.5 / 6)
    margin = out["margins_of_kidot"]["base"]["psnr"]
    assert margin["margin"] == pytest.approx(1.0 + 0.5 / 6) and margin["wins"] == 6
    assert margin["wilcoxon_p_greater"] == pytest.approx(1 / 64)  # exact test: all 6 positive


def test_config_errors():
    with pytest.raises(ValueError, match="setting"):
        ProtocolConfig(setting="pet")
    with pytest.raises(ValueError, match="validation"):
        ProtocolConfig(validation="test")
    with pytest.raises(ValueError, match="augment_copies"):
        ProtocolConfig(augment_copies=-1)
    with pytest.raises(ValueError, match="unknown methods"):
        ProtocolConfig(methods=("kidot", "magic"))
    with pytest.raises(ValueError, match="start"):
        ProtocolConfig(start="fbp")
    with pytest.raises(ValueError, match="single-coil MRI"):
        ProtocolConfig(setting="ct-sparse60", methods=("classical_tv",))
    with pytest.raises(ValueError, match="single-coil MRI"):
        ProtocolConfig(setting="ct-lowdose", start="phase_tv")


@pytest.mark.parametrize(("method", "start", "gain_db"), [("classical_tv", "tv", 0.2), ("classical_phase_tv", "phase_tv", 1.0)])
def test_classical_tv_methods_score_their_reconstruction(method, start, gain_db):
    cfg = ProtocolConfig(setting="mri4x", preset="test", methods=("classical", method))
    images = ellipse_phantoms(4, 32, seed=0)
    data = {"test": Measurements.from_simulation(ProspectiveMRI(32, 3)(images, torch.Generator().manual_seed(0)))}
    zero_filled, tv = run_method("classical", cfg, data, 0), run_method(method, cfg, data, 0)
    expected = ReconMetrics()(classical_reconstruction(data["test"].y, data["test"].operator, start), data["test"].gt)
    assert tv["per_case"]["psnr"] == pytest.approx(expected["psnr"].tolist())
    mean = lambda run: sum(run["per_case"]["psnr"]) / len(run["per_case"]["psnr"])
    assert mean(tv) > mean(zero_filled) + gain_db  # both fill k-space better than zeros on level-3 phantoms
