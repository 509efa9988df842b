"""Mass calibration (``calibrate_mass``, ``VGFM.calibrate``): observed masses at every kept time, the closed form
for a constant growth rate, persistence, and hold-out times that never enter the fit."""

import copy

import anndata as ad
import numpy as np
import ot_cells as oc
import pytest
import torch

UNTRAINED = {"steps": 0, "refine_epochs": 0}


def _fit(adata, tiny, **kw):
    config = {**tiny, **kw.pop("settings", {})}
    return oc.VGFM(adata, rep="X_emb", config=config, **kw).fit(progress=False)


@pytest.mark.parametrize("time_mode", ["real", "index"])
def test_every_view_of_the_model_carries_the_observed_masses(adata, tiny, time_mode):
    vg = _fit(adata, tiny, settings={"time_mode": time_mode, "calibrate_mass": True})
    S = vg.snapshots
    table = vg.evaluate()
    assert table["rme"].max() < 1e-4  # to the dopri5 tolerances (rtol 1e-5, atol 1e-6 on log w)
    pred = vg.predict(S.times[1:])
    np.testing.assert_allclose(pred.uns["relative_mass_pred"]["mass"], S.relative_mass[1:], rtol=1e-4)
    _, _, W = vg.trajectories(n_cells=len(S.X[0]), n_bins=5)
    assert W[-1].sum() == pytest.approx(S.relative_mass[-1], rel=1e-4)
    n0 = len(S.X[0])
    for k in (1, 3):  # mass carried along the flow from all first cells (each with weight 1)
        assert vg.push(0, S.times[k], method="flow", normalize=False).sum() / n0 == pytest.approx(
            S.relative_mass[k], rel=1e-4)
    assert vg.pull(0, 2.0, method="flow").sum() == pytest.approx(1.0)
    uncalibrated = copy.deepcopy(vg)
    uncalibrated.field.set_growth_offset(None, None)
    X = S.X[1].numpy()
    np.testing.assert_allclose(vg.growth(X, 0.5) - uncalibrated.growth(X, 0.5), vg.mass_offsets[1], atol=1e-5)


@pytest.mark.parametrize("time_mode", ["real", "index"])
def test_constant_growth_offset_is_compensated_exactly(adata, tiny, time_mode):
    vg = _fit(adata, tiny, settings={**UNTRAINED, "time_mode": time_mode})
    assert vg.mass_offsets is None
    rate = 0.3
    last = vg.field.growth.net[-1]
    with torch.no_grad():  # g(x, t) = rate everywhere: the rollout mass is exp(rate (t - t0))
        last.weight.zero_()
        last.bias.fill_(rate)
    vg.calibrate()
    t, M = vg.model_times, vg.snapshots.relative_mass
    expected = np.diff(np.log(M)) / np.diff(t) - rate
    tol = 1e-4  # float32 log-weights over the dopri5 steps
    np.testing.assert_allclose(vg.mass_offsets, expected, atol=tol)
    assert vg.config.calibrate_mass
    # c(t) is piecewise constant on the kept intervals and holds its end values outside them
    X = vg.snapshots.X[0].numpy()[:3]
    span = vg.snapshots.times
    for real_t, c in ((span[0] - 1, expected[0]), (span[1], expected[1]), (span[-1] + 1, expected[-1])):
        np.testing.assert_allclose(vg.growth(X, real_t), rate + c, atol=tol)
    vg.calibrate()  # a second calibration changes nothing
    np.testing.assert_allclose(vg.mass_offsets, expected, atol=tol)


def test_round_trip_keeps_the_calibration_and_old_files_load(adata, tiny, tmp_path):
    vg = _fit(adata, tiny, hold_out=1.5, settings={"calibrate_mass": True})
    vg.write()
    adata.write_h5ad(tmp_path / "fitted.h5ad")
    restored = oc.VGFM.load(ad.read_h5ad(tmp_path / "fitted.h5ad"))
    np.testing.assert_array_equal(restored.mass_offsets, vg.mass_offsets)
    np.testing.assert_allclose(restored.evaluate()["mass_pred"], vg.evaluate()["mass_pred"], rtol=1e-6)
    vg.save(tmp_path / "model.pt")
    np.testing.assert_array_equal(oc.VGFM.load(tmp_path / "model.pt", adata).mass_offsets, vg.mass_offsets)
    old = ad.read_h5ad(tmp_path / "fitted.h5ad")
    del old.uns["vgfm"]["mass_offsets"]  # as written before the mass calibration existed
    legacy = oc.VGFM.load(old)
    assert legacy.mass_offsets is None
    assert not np.allclose(legacy.evaluate()["mass_pred"], vg.evaluate()["mass_pred"], rtol=1e-3)


def test_held_out_mass_is_never_used(adata, tiny):
    counts = adata.obs["time"].value_counts().sort_index()
    sizes = dict(zip(counts.index, counts.to_numpy(dtype=float)))
    fits = [_fit(adata, tiny, hold_out=0.5, population_sizes={**sizes, 0.5: sizes[0.5] * f},
                 settings={"calibrate_mass": True}) for f in (1.0, 3.0)]
    np.testing.assert_array_equal(fits[0].mass_offsets, fits[1].mass_offsets)
    tables = [vg.evaluate() for vg in fits]
    assert tables[1]["mass_obs"][0] == pytest.approx(3 * tables[0]["mass_obs"][0])
    np.testing.assert_array_equal(tables[0]["mass_pred"], tables[1]["mass_pred"])
    assert tables[0]["rme"][1:].max() < 1e-4 and tables[0]["rme"][0] > 1e-3  # predicted, not fitted
    # the gap interval 0 -> 1.5 is fitted to the far kept time: changing N there changes its c
    kept_changed = oc.VGFM(adata, rep="X_emb", hold_out=0.5, population_sizes={**sizes, 1.5: sizes[1.5] * 2},
                           config=fits[0].config)
    kept_changed.field = copy.deepcopy(fits[0].field)
    kept_changed.field.set_growth_offset(None, None)
    kept_changed.calibrate()
    delta = kept_changed.mass_offsets - fits[0].mass_offsets
    np.testing.assert_allclose(delta, [np.log(2) / 1.5, -np.log(2) / 0.5], atol=1e-5)
