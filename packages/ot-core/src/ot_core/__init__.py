"""ot-core: optimal transport solvers in PyTorch.

Conventions: tensors in, tensors out (numpy accepted); ``reg`` (epsilon) is absolute; the entropic term is
eps KL(pi | a b^T); potentials f, g are in cost units, pi_ij = a_i b_j exp((f_i + g_j - C_ij) / eps);
``"sqeuclidean"`` is |x - y|^2 (``half=True``: |x - y|^2 / 2, GeomLoss).

Modules: ``costs``, ``geometry``, ``ops`` (softmin passes), ``solvers``, ``neural`` (losses), ``flows``,
``training``, ``datasets``, ``testing``.
"""

from importlib.metadata import version as _version

from . import costs, datasets, flows, neural, testing, training
from .api import solve, solve_sample
from .divergence import SinkhornLoss, reach_to_rho, sinkhorn_divergence, tau_to_rho
from .minibatch import PlanSampler
from .pot_style import emd, emd2, emd_blockwise, partial, sinkhorn, sinkhorn2, sinkhorn_unbalanced
from .result import OTResult
from .solvers.barycenter import BarycenterResult, barycenter_fixed, barycenter_free

__version__ = _version("ot-core")
__all__ = [
    "solve",
    "solve_sample",
    "sinkhorn_divergence",
    "SinkhornLoss",
    "reach_to_rho",
    "tau_to_rho",
    "OTResult",
    "PlanSampler",
    "sinkhorn",
    "sinkhorn2",
    "sinkhorn_unbalanced",
    "emd",
    "emd2",
    "emd_blockwise",
    "partial",
    "barycenter_fixed",
    "barycenter_free",
    "BarycenterResult",
    "costs",
    "datasets",
    "testing",
    "flows",
    "neural",
    "training",
    "__version__",
]
