"""Bad input is refused with a clear error before any coupling or training, and the AnnData is never edited."""

import copy

import numpy as np
import pandas as pd
import pytest

import ot_cells as oc
from ot_cells.snapshots import read_snapshots


def _vgfm(adata, **kw):
    kw.setdefault("rep", "X_emb")
    return oc.VGFM(adata, **kw)


def test_missing_time_key(adata):
    with pytest.raises(KeyError, match="time_key='day' is not a column"):
        _vgfm(adata, time_key="day")


def test_string_time_key_needs_a_mapping(adata):
    adata.obs["day"] = [f"day{t:g}" for t in adata.obs["time"]]
    with pytest.raises(TypeError, match="neither numeric nor an ordered categorical.*times="):
        _vgfm(adata, time_key="day")
    vg = _vgfm(adata, time_key="day", times={"day0": 0, "day0.5": 0.5, "day1.5": 1.5, "day2": 2})
    np.testing.assert_allclose(vg.snapshots.times, [0, 0.5, 1.5, 2])


def test_unordered_categorical_is_refused_ordered_is_read(adata):
    adata.obs["cat"] = pd.Categorical(adata.obs["time"].astype(str))
    with pytest.raises(TypeError, match="unordered categorical"):
        _vgfm(adata, time_key="cat")
    adata.obs["cat"] = adata.obs["cat"].cat.as_ordered()
    np.testing.assert_allclose(_vgfm(adata, time_key="cat").snapshots.times, [0, 0.5, 1.5, 2])
    names = {0.0: "early", 0.5: "mid", 1.5: "late", 2.0: "end"}
    adata.obs["stage"] = pd.Categorical(adata.obs["time"].map(names), categories=list(names.values()), ordered=True)
    with pytest.warns(UserWarning, match="ranks 0..K-1"):
        np.testing.assert_allclose(_vgfm(adata, time_key="stage").snapshots.times, [0, 1, 2, 3])


def test_single_time_point(adata):
    one = adata[adata.obs["time"] == 0].copy()
    with pytest.raises(ValueError, match="single time point"):
        _vgfm(one)


def test_nan_time_and_nan_representation(adata):
    bad = adata.copy()
    bad.obs.loc[bad.obs_names[3], "time"] = np.nan
    with pytest.raises(ValueError, match="missing or infinite times"):
        _vgfm(bad)
    bad = adata.copy()
    bad.obsm["X_emb"][5, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite values in 1 cells"):
        _vgfm(bad)


def test_unknown_rep_and_too_many_dims(adata):
    with pytest.raises(KeyError, match="rep='X_pca' is not in adata.obsm.*sc.pp.pca"):
        oc.VGFM(adata, rep="X_pca")
    with pytest.raises(ValueError, match="n_dims=3 but 'X_emb' has 2 columns"):
        _vgfm(adata, n_dims=3)


def test_too_few_cells(adata):
    keep = ~((adata.obs["time"] == 1.5).to_numpy() & (np.arange(adata.n_obs) % 10 != 0))
    sparse = adata[keep].copy()
    with pytest.raises(ValueError, match=r"time points \{1.5: \d\} have fewer than min_cells=10"):
        _vgfm(sparse)


def test_bad_hold_out_and_settings(adata):
    with pytest.raises(ValueError, match="first or last time"):
        _vgfm(adata, hold_out=0)
    with pytest.raises(ValueError, match="not an observed time"):
        _vgfm(adata, hold_out=1.0)
    with pytest.raises(ValueError, match="interpolation='sideways'"):
        _vgfm(adata, config={"interpolation": "sideways"})
    with pytest.raises(ValueError, match="unknown VGFM setting"):
        _vgfm(adata, config={"epochs": 3})
    with pytest.raises(ValueError, match="population_sizes has no entry"):
        read_snapshots(adata, "time", "X_emb", population_sizes={0: 10, 0.5: 12})


def test_fit_leaves_the_anndata_untouched(adata, tiny):
    before = copy.deepcopy(adata)
    vg = _vgfm(adata, config=tiny).fit(progress=False)
    vg.evaluate()
    vg.predict([1.0])
    assert list(adata.obs.columns) == list(before.obs.columns)
    assert set(adata.obsm.keys()) == set(before.obsm.keys())
    assert set(adata.uns.keys()) == set(before.uns.keys())
    np.testing.assert_array_equal(adata.obsm["X_emb"], before.obsm["X_emb"])
    vg.write()
    assert "growth_vgfm" in adata.obs and "velocity_vgfm" in adata.obsm and "vgfm" in adata.uns
    with pytest.raises(ValueError, match="already exist.*overwrite=True"):
        vg.write()
