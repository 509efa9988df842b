"""Workspace-wide pytest set-up, loaded before any test module is collected.

Triton picks its CPU interpreter when a kernel is defined, i.e. when ``ot_core.ops.triton_sqeuclid`` is first
imported, so ``TRITON_INTERPRET=1`` has to be in the environment before collection: set it here when no CUDA
device is present (an explicit TRITON_INTERPRET in the environment wins). The Triton tests then run on the
CPU.
"""

import os


def _interpret_triton_without_cuda() -> None:
    if "TRITON_INTERPRET" in os.environ:
        return
    import torch

    if not torch.cuda.is_available():
        os.environ["TRITON_INTERPRET"] = "1"


_interpret_triton_without_cuda()
