"""ot-medrecon: KIDOT (knowledge-informed dynamic optimal transport) for MRI and CT reconstruction from
unpaired data, built on MONAI.

Modules: ``physics`` (operators with exact adjoints, masks, coil maps), ``simulate`` (nominal and prospective
acquisitions), ``datasets`` (embedded phantoms, MONAI loading), ``nets`` (MONAI backbones, presets), ``kidot``
(the method), ``baselines`` (supervised U-Net / unrolled), ``classical`` (zero-filled / FBP, TV), ``metrics``,
``protocol`` (the gap benchmark), ``plotting``, ``cli``.
"""

from importlib.metadata import version as _version

from . import classical, datasets, metrics, nets, physics, simulate
from .baselines import SupervisedUNet, SupervisedUnrolled
from .classical import classical_reconstruction
from .engine import Measurements, SimulatedPairs
from .kidot import KIDOT, KIDOTFlow, kidot_path_cost
from .metrics import ReconMetrics
from .physics import (LinearOperator, MultiCoilMRI, ParallelBeamCT, SingleCoilMRI, birdcage_maps,
                      cartesian_mask, check_adjoint, operator_norm)
from .simulate import NominalCT, NominalMRI, ProspectiveCT, ProspectiveMRI, SimulateMeasurementd

__version__ = _version("ot-medrecon")
__all__ = [
    "KIDOT",
    "KIDOTFlow",
    "kidot_path_cost",
    "SupervisedUNet",
    "SupervisedUnrolled",
    "classical_reconstruction",
    "Measurements",
    "SimulatedPairs",
    "ReconMetrics",
    "LinearOperator",
    "SingleCoilMRI",
    "MultiCoilMRI",
    "ParallelBeamCT",
    "check_adjoint",
    "operator_norm",
    "cartesian_mask",
    "birdcage_maps",
    "NominalMRI",
    "ProspectiveMRI",
    "NominalCT",
    "ProspectiveCT",
    "SimulateMeasurementd",
    "classical",
    "datasets",
    "metrics",
    "nets",
    "physics",
    "simulate",
    "__version__",
]
