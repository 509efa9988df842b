"""The command line: fit / evaluate / predict on a small file, refusal to overwrite, errors as exit code 2."""

import json

import anndata as ad
import pytest

import ot_cells as oc
from ot_cells.cli import main

TINY_FLAGS = ["--preset", "small", "--steps", "20", "--refine-epochs", "1", "--epsilon", "0.05", "--device", "cpu"]


def test_fit_evaluate_predict(adata, tmp_path, capsys):
    adata.obsm["X_pca"] = adata.obsm["X_emb"]
    data = tmp_path / "data.h5ad"
    adata.write_h5ad(data)
    out = tmp_path / "fitted.h5ad"
    assert main(["fit", str(data), "--time-key", "time", "--rep", "X_pca", "--hold-out", "0.5", "--out", str(out),
                 "--calibrate-mass", *TINY_FLAGS]) == 0
    run_dir = tmp_path / "fitted"
    for name in ("model.pt", "config.json", "losses.csv", "metrics.json", "mass.png", "trajectories.png", "growth.png"):
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["held_out_time"] == [0.5] and metrics["per_time"][0]["held_out"] is True
    fitted = ad.read_h5ad(out)
    assert "growth_vgfm" in fitted.obs and oc.VGFM.load(fitted).held_out == [1]
    assert oc.VGFM.load(fitted).mass_offsets is not None  # --calibrate-mass reached the model and the h5ad
    kept = [r for r in metrics["per_time"] if not r["held_out"]]
    assert max(abs(r["mass_pred"] / r["mass_obs"] - 1) for r in kept) < 1e-3
    assert main(["evaluate", str(out), "--out", str(tmp_path / "eval")]) == 0
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["per_time"][2]["time"] == 2.0
    assert main(["predict", str(out), "--times", "1", "1.75", "--n-cells", "10", "--out", str(tmp_path / "p.h5ad")]) == 0
    assert ad.read_h5ad(tmp_path / "p.h5ad").n_obs == 20
    capsys.readouterr()
    # never overwrite: the same --out again is refused
    assert main(["fit", str(data), "--time-key", "time", "--rep", "X_pca", "--out", str(out), *TINY_FLAGS]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err


@pytest.mark.parametrize("args,message", [
    (["--time-key", "day"], "time_key='day' is not a column"),
    (["--rep", "X_umap"], "rep='X_umap' is not in adata.obsm"),
    (["--hold-out", "0"], "first or last time"),
])
def test_bad_input_exits_2_with_a_message(adata, tmp_path, capsys, args, message):
    data = tmp_path / "data.h5ad"
    adata.write_h5ad(data)
    code = main(["fit", str(data), "--rep", "X_emb", "--out", str(tmp_path / "run"), *TINY_FLAGS, *args])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run" / "model.pt").exists()


@pytest.mark.slow
def test_demo_quick(tmp_path):
    assert main(["demo", "--quick", "--out", str(tmp_path / "demo")]) == 0
    metrics = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert [row["time"] for row in metrics["per_time"]] == [1.0, 2.0, 3.0, 4.0]
    assert all(row["rme"] < 0.1 for row in metrics["per_time"])
    assert (tmp_path / "demo" / "growth.png").is_file()
