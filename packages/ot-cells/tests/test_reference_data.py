"""SROT on the development data reproduces the spec's reference values (experiment E1; skipped without data)."""

import pytest
import torch

import ot_cells as oc
from ot_cells.couplings import srot_coupling
from ot_cells.snapshots import read_snapshots

pytestmark = pytest.mark.shared_data


def test_simulation_gene_srot_first_pair(shared_cells):
    S = read_snapshots(oc.datasets.simulation_gene(shared_cells / "simulation_gene_data.csv"), "time", "X_emb")
    masses = (S.relative_mass[0], S.relative_mass[1])
    c = srot_coupling(S.X[0], S.X[1], 1.0, masses, n0=400, epsilon=0.003, reg_m=10.0, scale_cost=None)
    assert c.stats["converged"]
    assert torch.allclose(c.result.lazy_plan.col_sums(), torch.ones(442, dtype=torch.float64), atol=1e-6)
    assert c.stats["mean_factor"] == pytest.approx(442 / 400, rel=1e-9)
    assert c.stats["objective"] == pytest.approx(809.75, abs=0.01)  # the optimum
    assert (c.stats["min_factor"], c.stats["max_factor"]) == pytest.approx((1.057, 1.213), abs=1e-3)
    # the original's 1000 scaling iterations stop on a plateau far from it (flag srot_solver="scaling")
    with pytest.warns(RuntimeWarning, match="without reaching tol"):
        early = srot_coupling(S.X[0], S.X[1], 1.0, masses, n0=400, epsilon=0.003, reg_m=10.0, scale_cost=None,
                              solver="scaling", max_iter=1000)
    assert early.stats["max_factor"] == pytest.approx(1.270, abs=2e-3)
