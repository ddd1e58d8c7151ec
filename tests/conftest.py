import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import REPO

# Tests are CPU-only and must behave the same on a 2-core machine and a laptop.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def run_cli():
    """Run `python -m poolnas ...` in a subprocess; returns the CompletedProcess."""

    def run(*args, check=False, **kw):
        proc = subprocess.run([sys.executable, "-m", "poolnas", *map(str, args)], capture_output=True, text=True,
                              cwd=kw.pop("cwd", REPO), timeout=kw.pop("timeout", 600), **kw)
        if check and proc.returncode != 0:
            raise AssertionError(f"poolnas {' '.join(map(str, args))} failed:\n{proc.stderr}")
        return proc

    return run


