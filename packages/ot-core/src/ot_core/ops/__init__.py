"""Softmin (log-sum-exp) and plan-application passes: plain torch (dense or row-chunked) and fused Triton."""

from .torch_ops import apply_cost, apply_dot, block_rows_for, logsumexp_lastdim, lse_cost, lse_dot, plan_cost

__all__ = ["apply_cost", "apply_dot", "block_rows_for", "logsumexp_lastdim", "lse_cost", "lse_dot", "plan_cost"]


def triton_available() -> bool:
    """True when the fused Triton kernels can run on CUDA tensors here (triton installed, a GPU present)."""
    import torch

    if not torch.cuda.is_available():
        return False
    try:
        from . import triton_sqeuclid
    except ImportError:
        return False
    return not triton_sqeuclid.INTERPRETED


def check_triton_usable(x) -> None:
    """Raise a clear error when ``backend="triton"`` cannot run on ``x``.

    CPU tensors need the Triton interpreter, which Triton chooses when the kernel module is first imported:
    ``TRITON_INTERPRET=1`` must be in the environment before that.
    """
    try:
        from . import triton_sqeuclid
    except ImportError as err:
        raise RuntimeError(
            f"backend='triton' needs the triton package ({err}); install ot-core[triton] or use "
            "backend='chunked'"
        ) from None
    if x.device.type != "cuda" and not triton_sqeuclid.INTERPRETED:
        raise RuntimeError(
            f"backend='triton' runs on CUDA tensors, got tensors on {x.device.type}; use backend='chunked' "
            "on the CPU, or set TRITON_INTERPRET=1 before ot_core's Triton kernels are imported (slow, for "
            "tests)"
        )
