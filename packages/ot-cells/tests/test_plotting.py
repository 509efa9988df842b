"""Plots return Axes (scanpy convention), draw the right data and save files."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import ot_cells as oc  # noqa: E402


def test_plots_return_axes_and_save(adata, tiny, tmp_path):
    vg = oc.VGFM(adata, rep="X_emb", config=tiny, hold_out=1.5).fit(progress=False)
    vg.write()
    oc.tl.srot(adata, rep="X_emb", epsilon=0.05)
    ax = oc.pl.mass(vg, save=tmp_path / "mass.png")
    observed = ax.collections[0].get_offsets()
    np.testing.assert_allclose(observed[:, 1], vg.snapshots.relative_mass[vg.kept])
    assert (tmp_path / "mass.png").stat().st_size > 0
    ax = oc.pl.growth(adata, basis="emb")
    assert np.allclose(ax.collections[0].get_offsets()[:, 0], adata.obsm["X_emb"][:, 0])
    for axes in (oc.pl.trajectories(vg, n_cells=5, n_bins=4), oc.pl.velocity_stream(adata, basis="emb", grid=10),
                 oc.pl.srot_mass(adata, basis="X_emb")):
        assert isinstance(axes, plt.Axes)
    with pytest.raises(KeyError, match="basis='umap'"):
        oc.pl.growth(adata, basis="umap")
    plt.close("all")
