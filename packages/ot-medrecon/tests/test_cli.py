"""The command line: demo end to end, fit / evaluate / predict on files, clear errors."""

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from ot_medrecon.cli import main
from ot_medrecon.datasets import ellipse_phantoms
from ot_medrecon.engine import Measurements
from ot_medrecon.io import load_measurements, load_model, save_measurements
from ot_medrecon.simulate import NominalCT, ProspectiveMRI


def test_demo_quick_writes_metrics_and_figures(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["mean"]) == {"classical", "supervised_unet", "kidot"}
    assert all(np.isfinite(v["psnr"]) for v in metrics["mean"].values())
    for name in ("reconstructions.png", "kidot_path.png", "kidot_training.png"):
        assert (out / name).stat().st_size > 1000
    assert main(["demo", "--quick", "--out", str(out)]) == 2  # refuses to overwrite a non-empty folder


@pytest.fixture()
def mri_files(tmp_path):
    images = ellipse_phantoms(6, 64, seed=3)
    meas = Measurements.from_simulation(ProspectiveMRI(32, level=1)(images, torch.Generator().manual_seed(0)))
    save_measurements(tmp_path / "meas.npz", meas)
    np.savez(tmp_path / "clean.npz", images=ellipse_phantoms(6, 32, seed=100)[:, 0].numpy())
    return tmp_path


def test_measurement_archive_round_trip(mri_files):
    meas = load_measurements(mri_files / "meas.npz")
    assert meas.y.shape == (6, 2, 32, 32) and meas.gt.shape == (6, 1, 32, 32)
    ct = Measurements.from_simulation(NominalCT(16, 12)(ellipse_phantoms(2, 16), torch.Generator()))
    save_measurements(mri_files / "ct.npz", ct)
    back = load_measurements(mri_files / "ct.npz")
    assert torch.allclose(back.y, ct.y) and back.operator.n_views == 12


def test_fit_evaluate_predict_on_files(mri_files):
    fit_out = mri_files / "fit"
    (mri_files / "fit.json").write_text(json.dumps({"cost_split": 0.3}))
    assert main(["fit", "--config", str(mri_files / "fit.json"), "--measurements", str(mri_files / "meas.npz"),
                 "--clean-images", str(mri_files / "clean.npz"), "--preset", "test", "--n-iter", "3",
                 "--batch-size", "2", "--null-space", "--start", "tv", "--out", str(fit_out)]) == 0
    flow = load_model(fit_out / "model.pt")[0].flow
    assert flow.null_space and flow.start == "tv"  # the options survive the checkpoint
    split = json.loads((fit_out / "metrics.json").read_text())
    assert split["config"]["cost_split"] == 0.3
    assert main(["fit", "--measurements", str(mri_files / "meas.npz"), "--clean-images", str(mri_files / "clean.npz"),
                 "--preset", "test", "--n-iter", "3", "--batch-size", "2", "--null-space",
                 "--out", str(mri_files / "fit_nosplit")]) == 0
    plain = json.loads((mri_files / "fit_nosplit" / "metrics.json").read_text())
    # the held-out lines reach KIDOT's data cost (without a split it only sees the measurement noise)
    assert split["final"]["path_cost"] > 2 * plain["final"]["path_cost"]
    ev_out = mri_files / "eval"
    assert main(["evaluate", "--checkpoint", str(fit_out / "model.pt"), "--data", str(mri_files / "meas.npz"),
                 "--out", str(ev_out)]) == 0
    assert len(json.loads((ev_out / "metrics.json").read_text())["per_case"]["psnr"]) == 6
    pred_out = mri_files / "pred"
    assert main(["predict", "--checkpoint", str(fit_out / "model.pt"), "--input", str(mri_files / "meas.npz"),
                 "--out", str(pred_out)]) == 0
    assert nib.load(str(pred_out / "recon.nii.gz")).shape == (32, 32, 6)
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((64, 64)).astype(np.float32), np.eye(4)),
             str(mri_files / "img.nii.gz"))
    assert main(["predict", "--checkpoint", str(fit_out / "model.pt"), "--input", str(mri_files / "img.nii.gz"),
                 "--out", str(mri_files / "pred2")]) == 0


def test_cli_errors_are_messages(mri_files, capsys):
    assert main(["fit", "--out", str(mri_files / "x")]) == 2
    assert "fit needs measurements" in capsys.readouterr().err
    np.savez(mri_files / "bad.npz", y=np.zeros((2, 1, 32, 32), np.float32), mask=np.ones((2, 32, 32)))
    assert main(["fit", "--measurements", str(mri_files / "bad.npz"), "--clean-images",
                 str(mri_files / "clean.npz"), "--out", str(mri_files / "y")]) == 2
    assert "real/imaginary channels" in capsys.readouterr().err
    np.savez(mri_files / "bad2.npz", y=np.zeros((2, 32, 32), np.complex64), mask=np.ones((2, 16, 16)))
    assert main(["fit", "--measurements", str(mri_files / "bad2.npz"), "--clean-images",
                 str(mri_files / "clean.npz"), "--out", str(mri_files / "z")]) == 2
    assert "does not match the k-space grid" in capsys.readouterr().err
