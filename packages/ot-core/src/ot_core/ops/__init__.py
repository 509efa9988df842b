"""Softmin (log-sum-exp) and plan-application passes: plain torch (dense or row-chunked) and fused Triton."""

from .torch_ops import apply_cost, apply_dot, block_rows_for, logsumexp_lastdim, lse_cost, lse_dot, plan_cost

__all__ = ["apply_cost", "apply_dot", "block_rows_for", "logsumexp_lastdim", "lse_cost", "lse_dot", "plan_cost"]


def triton_available() -> bool:
    """True when the fused Triton kernels can run on CUDA tensors here."""
    try:
        from . import triton_sqeuclid  # noqa: F401
    except ImportError:
        return False
    import torch

    return torch.cuda.is_available()


def check_triton_usable(x) -> None:
    """Raise a clear error when ``backend="triton"`` cannot run on ``x``."""
    import os

    try:
        from . import triton_sqeuclid  # noqa: F401
    except ImportError as err:
        raise RuntimeError(
            f"backend='triton' needs the triton package ({err}); install ot-core[triton] or use backend='chunked'"
        ) from None
    if x.device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
        raise RuntimeError(
            "backend='triton' runs on CUDA tensors; on the CPU set TRITON_INTERPRET=1 before importing ot_core "
            "(slow, for tests) or use backend='chunked'"
        )
