"""Simulators against their closed forms and fixed points; loaders for CSV and arrays."""

import numpy as np
import pytest

import ot_cells as oc
from ot_cells.datasets import _toggle_field


def test_gaussian_simulator_matches_closed_form():
    adata = oc.datasets.gaussian_bifurcation(n0=4000, times=(0, 1.5, 3), seed=1)
    for t in (1.5, 3.0):
        truth = oc.datasets.gaussian_bifurcation_truth(t)
        x = adata.obsm["X_emb"][adata.obs["time"] == t]
        assert len(x) == round(4000 * truth["relative_mass"])
        upper = x[:, 1] > 0
        assert upper.mean() == pytest.approx(truth["upper_share"], abs=0.015)
        np.testing.assert_allclose(x[upper].mean(0), truth["means"][0], atol=0.03)
    assert oc.datasets.gaussian_bifurcation_truth(3.0)["relative_mass"] == pytest.approx(2.085, abs=1e-3)
    # per-particle truths: the next position is the flow map, the log-mass increment its closed form
    first = adata.obs["time"] == 0
    x, nxt = adata.obsm["X_emb"][first], adata.obsm["X_next_true"][first]
    np.testing.assert_allclose(nxt[:, 0], x[:, 0] + 1.5, atol=1e-5)
    np.testing.assert_allclose(nxt[:, 1], x[:, 1] * np.exp(0.6 * 1.5), rtol=1e-5)


def test_gaussian_simulator_high_dimensional_embedding():
    adata = oc.datasets.gaussian_bifurcation(n0=50, times=(0, 1), dim=10)
    Q = adata.uns["truth"]["rotation"]
    np.testing.assert_allclose(Q @ Q.T, np.eye(10), atol=1e-12)
    u = adata.obsm["X_emb"] @ Q  # back to (u1, u2, z)
    np.testing.assert_allclose(adata.obs["growth_true"], 0.5 * u[:, 1], atol=1e-5)


def test_toggle_switch_attractors_and_growth():
    for attractor in ([1.933, 0.067], [0.067, 1.933]):
        x = np.array([attractor])
        for _ in range(20000):  # relax onto the fixed point
            x = x + 0.01 * _toggle_field(x, np.zeros(1, bool))
        np.testing.assert_allclose(x[0], attractor, atol=1e-3)
    adata = oc.datasets.toggle_switch(n0=100, n_pool=4000, times=(0, 2, 4))
    mass = adata.uns["truth"]["relative_mass"]
    assert mass[0] == 1 and 1.1 < mass[1] < 1.35 and 1.5 < mass[2] < 1.9
    assert adata.obs["time"].value_counts().sort_index().tolist() == [round(100 * m) for m in mass]


def test_csv_and_array_loaders(tmp_path):
    rows = ["samples,x1,x2"] + [f"{t},{i},{-i}" for t in (0, 1) for i in range(12)]
    (tmp_path / "cells.csv").write_text("\n".join(rows))
    adata = oc.datasets.read_snapshots_csv(tmp_path / "cells.csv")
    assert adata.n_obs == 24 and adata.obsm["X_emb"].shape == (24, 2)
    assert sorted(adata.obs["time"].unique()) == [0.0, 1.0]
    with pytest.raises(FileNotFoundError):
        oc.datasets.read(tmp_path / "missing.h5ad")
    arrays = oc.datasets.from_arrays([np.zeros((3, 2)), np.ones((4, 2))], [2.0, 1.0])
    assert arrays.obs["time_index"].tolist() == [1, 1, 1, 0, 0, 0, 0]


@pytest.mark.shared_data
def test_real_data_loaders(shared_cells):
    mouse = oc.datasets.mouse_hematopoiesis(shared_cells / "mouse_hematopoiesis.csv")
    assert mouse.obs["day"].value_counts().sort_index().tolist() == [1429, 3781, 5788]
    gene = oc.datasets.simulation_gene(shared_cells / "simulation_gene_data.csv")
    assert gene.obs["time"].value_counts().sort_index().tolist() == [400, 442, 530, 690, 969]
