"""The GPU benchmark script runs end to end in its --smoke mode (CPU, Triton interpreter, tiny sizes)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_gpu.py"


@pytest.mark.triton
def test_bench_gpu_smoke_writes_checks_table_and_plot(tmp_path):
    pytest.importorskip("triton")
    pytest.importorskip("geomloss")
    env = {**os.environ, "TRITON_INTERPRET": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--out", str(tmp_path)], env=env,
                          capture_output=True, text=True, check=False, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads((tmp_path / "bench_gpu.json").read_text())
    assert report["checks"] and all(c["passed"] for c in report["checks"])
    timed = {r["method"] for r in report["rows"] if r["ms_per_iter"] is not None}
    assert {"ot-core triton", "ot-core chunked torch", "POT torch dense", "GeomLoss tensorized"} <= timed
    flash = [r for r in report["rows"] if r["method"] == "FlashSinkhorn"]
    assert flash and all(r["note"].startswith("skipped") for r in flash)
    table = (tmp_path / "bench_gpu.md").read_text()
    assert "| ot-core triton | tf32 |" in table
    assert (tmp_path / "bench_gpu.png").stat().st_size > 10_000


def test_bench_gpu_help_needs_no_gpu():
    args = [sys.executable, str(SCRIPT), "--help"]
    proc = subprocess.run(args, capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0 and "--smoke" in proc.stdout
