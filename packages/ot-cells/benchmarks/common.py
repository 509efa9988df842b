"""Helpers shared by the benchmark scripts: argument parsing, result files, markdown tables."""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results"
SHARED_CELLS = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "cells"


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", type=Path, default=RESULTS, help="folder of the JSON results (default: %(default)s)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--data", type=Path, default=SHARED_CELLS, help="folder with the cells CSV files")
    return p


def setup(args: argparse.Namespace) -> float:
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    return time.time()


def save(args: argparse.Namespace, name: str, result: dict, started: float) -> Path:
    result = {**result, "command": " ".join([Path(sys.executable).name, *sys.argv]),
              "seconds": round(time.time() - started, 1), "torch_threads": torch.get_num_threads(),
              "machine": platform.platform()}
    path = args.out / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, default=_default) + "\n")
    print(f"wrote {path}")
    return path


def _default(value):
    if isinstance(value, (np.generic,)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(type(value).__name__)


def mean_sd(values) -> str:
    v = np.asarray(values, dtype=float)
    return f"{v.mean():.3f} ± {v.std(ddof=1):.3f}" if len(v) > 1 else f"{v.mean():.3f}"
