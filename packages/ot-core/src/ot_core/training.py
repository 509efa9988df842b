"""Training utilities shared by every ot-* package: seeding, RNG save/restore, atomic checkpoints with resume,
progress bars, and torchrun/DDP set-up.

Typical loop::

    from ot_core import training
    training.seed_everything(0)
    ckpt = training.CheckpointManager("runs/exp/checkpoints", keep_last=2)
    state = ckpt.load_latest()                     # None on a fresh run
    start = training.restore(state, model=model, optimizer=opt) if state else 0
    for step in training.progress(range(start, n_steps), desc="fit"):
        ...
        if (step + 1) % 100 == 0:
            ckpt.save(step + 1, model=model, optimizer=opt)
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import torch

__all__ = [
    "seed_everything",
    "rng_state",
    "set_rng_state",
    "preserve_rng",
    "atomic_save",
    "atomic_write_text",
    "atomic_write_json",
    "CheckpointManager",
    "restore",
    "progress",
    "DistInfo",
    "ddp_setup",
    "ddp_cleanup",
    "is_main_process",
]


# ------------------------------------------------------------------------------------------------ seeding
def seed_everything(seed: int, deterministic: bool = False) -> torch.Generator:
    """Seed ``random``, numpy and torch (CPU and CUDA); return a CPU generator seeded with ``seed``.

    ``deterministic=True`` also asks torch for deterministic kernels (slower; errors on ops without one).
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    return torch.Generator().manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """The global RNG states of ``random``, numpy, torch CPU and (if initialised) CUDA."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextlib.contextmanager
def preserve_rng() -> Iterator[None]:
    """Run a block without changing the caller's global RNG states."""
    saved = rng_state()
    try:
        yield
    finally:
        set_rng_state(saved)


# ------------------------------------------------------------------------------------------------ atomic I/O
@contextlib.contextmanager
def _atomic_target(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file in the same folder, then ``os.replace``: a crash never leaves a
    half-written file at ``path``."""
    with _atomic_target(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def atomic_write_text(text: str, path: str | os.PathLike) -> Path:
    with _atomic_target(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def atomic_write_json(obj: Any, path: str | os.PathLike, indent: int = 2) -> Path:
    return atomic_write_text(json.dumps(obj, indent=indent, sort_keys=True, default=_json_default) + "\n", path)


def _json_default(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# ------------------------------------------------------------------------------------------------ checkpoints
class CheckpointManager:
    """Numbered checkpoints ``step-00001200.pt`` in ``directory``, written atomically, the last
    ``keep_last`` kept. Each holds the given objects' ``state_dict()`` (or the objects themselves), the step and
    the global RNG states, so :func:`restore` resumes a run exactly where it stopped."""

    _PATTERN = re.compile(r"^step-(\d+)\.pt$")

    def __init__(self, directory: str | os.PathLike, keep_last: int = 2):
        if keep_last < 1:
            raise ValueError(f"keep_last must be >= 1, got {keep_last}")
        self.directory = Path(directory)
        self.keep_last = keep_last

    def paths(self) -> list[Path]:
        """Existing checkpoints, oldest first."""
        if not self.directory.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.directory.iterdir() if (m := self._PATTERN.match(p.name))]
        return [p for _, p in sorted(found)]

    def save(self, step: int, **objects: Any) -> Path:
        state = {"step": int(step), "rng": rng_state()}
        for name, obj in objects.items():
            state[name] = obj.state_dict() if hasattr(obj, "state_dict") else obj
        path = atomic_save(state, self.directory / f"step-{int(step):08d}.pt")
        for old in self.paths()[: -self.keep_last]:
            old.unlink(missing_ok=True)
        return path

    def load_latest(self, map_location: str | torch.device = "cpu") -> dict[str, Any] | None:
        paths = self.paths()
        if not paths:
            return None
        return torch.load(paths[-1], map_location=map_location, weights_only=False)


def restore(state: dict[str, Any], restore_rng: bool = True, **objects: Any) -> int:
    """Load ``state[name]`` into each object (``load_state_dict``), restore RNG states, return the step."""
    for name, obj in objects.items():
        if name not in state:
            raise KeyError(f"the checkpoint has no entry {name!r}; it holds {sorted(k for k in state if k != 'rng')}")
        obj.load_state_dict(state[name])
    if restore_rng and "rng" in state:
        set_rng_state(state["rng"])
    return int(state["step"])


# ------------------------------------------------------------------------------------------------ progress
def progress(iterable: Iterable, total: int | None = None, desc: str | None = None, disable: bool | None = None,
             **kwargs: Any):
    """A tqdm progress bar (on stderr; hidden on non-main DDP ranks and when ``disable``)."""
    from tqdm.auto import tqdm

    if disable is None:
        disable = not is_main_process()
    return tqdm(iterable, total=total, desc=desc, disable=disable, dynamic_ncols=True, **kwargs)


# ------------------------------------------------------------------------------------------------ DDP
@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def ddp_setup(device: str | None = None) -> DistInfo:
    """Initialise torch.distributed from the variables ``torchrun`` sets (RANK, WORLD_SIZE, LOCAL_RANK).

    Without them (a plain ``python`` run) nothing is initialised and a single-process DistInfo is returned.
    Backend: NCCL on CUDA, Gloo otherwise.
    """
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        return DistInfo(0, 1, 0, dev)
    import torch.distributed as dist

    rank, world, local = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0))
    use_cuda = torch.cuda.is_available() and device != "cpu"
    if use_cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistInfo(rank, world, local, torch.device(f"cuda:{local}" if use_cuda else "cpu"))


def ddp_cleanup() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_main_process() -> bool:
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0
