"""Fitted models: determinism, caller RNG, resume, h5ad round trip, evaluation, push/pull/transitions."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch

import ot_cells as oc


def _fit(adata, tiny, **kw):
    return oc.VGFM(adata, rep="X_emb", config=tiny, **kw).fit(progress=False)


def test_same_seed_same_model_and_caller_rng_restored(adata, tiny):
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = _fit(adata, tiny).predict([2.0])
    assert torch.equal(torch.get_rng_state(), state)
    b = _fit(adata, tiny).predict([2.0])
    np.testing.assert_array_equal(a.X, b.X)
    c = oc.VGFM(adata, rep="X_emb", config={**tiny, "seed": 1}).fit(progress=False).predict([2.0])
    assert not np.allclose(a.X, c.X)


def test_resume_continues_exactly(adata, tiny, tmp_path):
    cfg = {**tiny, "checkpoint_every": 10}
    straight = oc.VGFM(adata, rep="X_emb", config=cfg).fit(progress=False).predict([2.0])
    # an "interrupted" run: stage 1 stopped at step 10 of 30, then resumed with the full settings
    oc.VGFM(adata, rep="X_emb", config={**cfg, "steps": 10, "refine_epochs": 0}).fit(
        checkpoint_dir=tmp_path, progress=False)
    resumed = oc.VGFM(adata, rep="X_emb", config=cfg).fit(checkpoint_dir=tmp_path, resume=True, progress=False)
    np.testing.assert_allclose(resumed.predict([2.0]).X, straight.X, rtol=1e-5, atol=1e-6)
    assert (resumed.losses["stage"] == 1).sum() == 30


def test_h5ad_round_trip_reproduces_predictions(adata, tiny, tmp_path):
    vg = _fit(adata, tiny, hold_out=1.5)
    vg.write()
    adata.write_h5ad(tmp_path / "fitted.h5ad")
    back = ad.read_h5ad(tmp_path / "fitted.h5ad")
    restored = oc.VGFM.load(back)
    assert restored.config == vg.config and restored.held_out == vg.held_out
    np.testing.assert_allclose(restored.predict([1.5, 2.0]).X, vg.predict([1.5, 2.0]).X, rtol=1e-6)
    pd.testing.assert_frame_equal(restored.evaluate(), vg.evaluate())
    vg.save(tmp_path / "model.pt")
    from_file = oc.VGFM.load(tmp_path / "model.pt", adata)
    np.testing.assert_allclose(from_file.growth(adata.obsm["X_emb"], 1.0), vg.growth(adata.obsm["X_emb"], 1.0))
    with pytest.raises(ValueError, match="differ from the model"):
        oc.VGFM.load(tmp_path / "model.pt", adata[adata.obs["time"] != 0.5].copy())


def test_evaluate_predict_and_trajectories(adata, tiny):
    vg = _fit(adata, tiny, hold_out=0.5)
    table = vg.evaluate()
    assert list(table.columns) == ["time", "w1", "rme", "mass_pred", "mass_obs", "held_out"]
    assert table["held_out"].tolist() == [True, False, False]
    np.testing.assert_allclose(table["mass_obs"], vg.snapshots.relative_mass[1:])
    pred = vg.predict([0.7, 2.0], n_cells=20)
    assert pred.n_obs == 40 and "X_emb" in pred.obsm
    np.testing.assert_allclose(pred.obs.groupby("time")["weight"].sum(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(pred.obs.groupby("time")["mass"].sum(), pred.uns["relative_mass_pred"]["mass"], rtol=1e-6)
    times, X, W = vg.trajectories(n_cells=10, n_bins=5)
    assert X.shape == (5, 10, 2) and W.shape == (5, 10) and np.isclose(times[-1], 2.0)
    later = vg.predict([2.0], start_time=1.5)
    assert later.uns["relative_mass_pred"]["mass"][0] > 0


def test_growth_free_baseline_keeps_mass(adata, tiny):
    vg = _fit(adata, {**tiny, "coupling": "exact", "growth": False})
    np.testing.assert_allclose(vg.evaluate()["mass_pred"], 1.0, rtol=1e-5)
    assert vg.field.growth is None


def test_push_pull_and_transitions_follow_the_plans(adata, tiny):
    adata.obs["branch"] = np.where(adata.obsm["X_emb"][:, 1] > 0, "up", "down")
    vg = oc.VGFM(adata, rep="X_emb", config=tiny)
    links = vg.compute_couplings()
    P0, P1 = (iv.coupling.result.plan for iv in links[:2])
    a0, b1 = links[0].coupling.a, links[1].coupling.b
    pushed = vg.push(0, 1.5, normalize=False)
    expected = P1.T @ ((P0.T @ (torch.ones(len(a0), dtype=torch.float64) / a0)) / links[1].coupling.a)
    np.testing.assert_allclose(pushed, expected.numpy(), rtol=1e-8)
    pulled = vg.pull(0.5, 1.5, data="branch", subset="up")
    mask = torch.from_numpy((adata.obs["branch"].to_numpy()[vg.snapshots.obs_index[2]] == "up").astype(float))
    ref = P1 @ (mask / b1)
    np.testing.assert_allclose(pulled, (ref / ref.sum()).numpy(), rtol=1e-8)
    table = vg.cell_transition(0, 0.5, "branch", "branch")
    np.testing.assert_allclose(table.sum(1), 1.0)
    assert table.loc["up", "up"] > 0.8 and table.loc["down", "down"] > 0.8
    vg.fit(progress=False)
    flow = vg.push(0, 0.5, method="flow")
    assert flow.shape == (len(vg.snapshots.X[1]),) and np.isclose(flow.sum(), 1.0)
    with pytest.raises(ValueError, match="subset="):
        vg.push(0, 0.5, data="branch")


def test_functional_tools_write_documented_keys(adata, tiny):
    oc.tl.srot(adata, rep="X_emb", epsilon=0.05)
    first = adata.obs["time"] == 0
    counts = adata.obs["time"].value_counts().sort_index().to_numpy()
    assert adata.obs.loc[first, "srot_mass"].mean() == pytest.approx(counts[1] / counts[0], rel=1e-8)
    assert adata.obs.loc[adata.obs["time"] == 2.0, "srot_growth"].isna().all()
    assert adata.uns["srot"]["pairs"]["converged"].all()
    with pytest.raises(ValueError, match="already exist"):
        oc.tl.srot(adata, rep="X_emb")
    out = oc.tl.vgfm(adata, rep="X_emb", copy=True, progress=False, config=tiny)
    assert "growth_vgfm" in out.obs and "growth_vgfm" not in adata.obs
    assert oc.VGFM.load(out).config.steps == tiny["steps"]
    oc.pp.relative_mass(adata)
    np.testing.assert_allclose(adata.uns["ot_cells"]["relative_mass"]["mass"], counts / counts[0])


def test_holdout_benchmark_rows(adata, tiny):
    table = oc.tl.holdout_benchmark(adata, "time", "X_emb", [1.5], seeds=(0,), config=tiny, calibrate_mass=True)
    assert set(table["method"]) == {"VGFM", "OT-CFM (growth-free)", "static SROT interpolation",
                                    "previous snapshot", "next snapshot"}
    free = table[table["method"] == "OT-CFM (growth-free)"].iloc[0]
    assert free["mass_pred"] == pytest.approx(1.0, rel=1e-5)  # balanced: no growth, no mass calibration
    nxt = table[table["method"] == "next snapshot"].iloc[0]
    assert nxt["rme"] == pytest.approx(abs(nxt["mass_pred"] - nxt["mass_obs"]) / nxt["mass_obs"])
    assert (table["w1"] > 0).all()
