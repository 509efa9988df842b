"""Workspace-wide pytest set-up and fixtures, loaded before any test module is collected.

Tests run torch (and the subprocesses they start) on one CPU thread unless OMP_NUM_THREADS is set: the suite
is made of many small solves, for which a second thread buys nothing, and on a busy shared runner OpenMP's
barriers turn each small op into a scheduler wait (measured here: 16 ms instead of 0.08 ms for a 64 x 64 exp).

Triton picks its CPU interpreter when a kernel is defined, i.e. when ``ot_core.ops.triton_sqeuclid`` is first
imported, so ``TRITON_INTERPRET=1`` has to be in the environment before collection: it is set here when no CUDA
device is present (an explicit TRITON_INTERPRET in the environment wins). The Triton tests then run on the CPU.
"""

import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402

SHARED_DATA = Path(__file__).resolve().parent.parent / "shared" / "data"


def _interpret_triton_without_cuda() -> None:
    if "TRITON_INTERPRET" in os.environ:
        return
    import torch

    if not torch.cuda.is_available():
        os.environ["TRITON_INTERPRET"] = "1"


_interpret_triton_without_cuda()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the checkout (development data, never committed); skips when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present beside the checkout")
    return SHARED_DATA
