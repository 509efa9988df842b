"""Shared fixtures: a tiny simulated time course and tiny training settings (seconds on a CPU)."""

from pathlib import Path

import pytest

import ot_cells as oc

#: the development data beside the repository checkout (never committed; tests skip without it)
SHARED_CELLS = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "cells"

TINY = {"hidden": 16, "n_hidden": 2, "steps": 30, "refine_epochs": 2, "batch_size": 32, "epsilon": 0.05}


@pytest.fixture
def adata():
    """Simulator B with 60 initial cells at t = 0, 0.5, 1.5, 2 (irregular gaps)."""
    return oc.datasets.gaussian_bifurcation(n0=60, times=(0, 0.5, 1.5, 2.0), seed=0)


@pytest.fixture
def shared_cells():
    """Folder of the development data CSVs; skips the test when it is absent."""
    if not (SHARED_CELLS / "simulation_gene_data.csv").is_file():
        pytest.skip("../shared/data/cells is absent")
    return SHARED_CELLS


@pytest.fixture
def tiny():
    return dict(TINY)
