"""bench/gpu_check.py, the command for the first GPU, keeps working: run small on the CPU, every section printed."""

import subprocess
import sys

import pytest

from helpers import REPO


@pytest.mark.slow
def test_gpu_check_runs_small_on_cpu():
    proc = subprocess.run([sys.executable, str(REPO / "bench/gpu_check.py"), "--device", "cpu", "--small",
                           "--jobs", "1", "2"], capture_output=True, text=True, cwd=REPO, timeout=900)
    out = proc.stdout
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for section in ("1. CUDA tests", "2. correctness on cpu", "3. images/s", "4. N jobs sharing cpu"):
        assert f"== {section}" in out
    assert "needs CUDA" in out  # the CUDA test is found and reported as skipped here
    assert out.count(" ok") >= 8 and "CHECK" not in out.replace("all checks ok", "")
    for config in ("4-3-3", "8-1-1", "1-1-8"):
        assert any(line.split()[:1] == [config] for line in out.splitlines())
    assert "1 job(s)" in out and "2 job(s)" in out and "gpu_check: all checks ok" in out
