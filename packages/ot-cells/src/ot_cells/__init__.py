"""ot-cells: joint velocity-growth flow matching (VGFM) for single-cell time courses on AnnData.

    import ot_cells as oc
    adata = oc.datasets.toggle_switch()
    vg = oc.tl.VGFM(adata, time_key="time", rep="X_emb").fit()
    vg.evaluate(); vg.write(); oc.pl.growth(adata, basis="emb")
"""

from importlib.metadata import version as _version

from . import datasets, pp, tl
from . import plotting as pl
from .config import PRESETS, VGFMConfig
from .vgfm import VGFM

__version__ = _version("ot-cells")
__all__ = ["datasets", "pp", "tl", "pl", "VGFM", "VGFMConfig", "PRESETS", "__version__"]
