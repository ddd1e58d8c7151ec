import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from poolnas.settings import PROFILE_DIR

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
TIMING = {"train_seconds", "eval_seconds", "wall_seconds", "images_per_s", "provenance"}

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


# --- shared by the search and baseline tests ----------------------------------------------------------------


class Stop(Exception):
    """Raised from an `after_epoch` hook to interrupt a run, as a crash would."""


def comparable(record: dict) -> dict:
    """A search record without its timings: what a rerun or a resumed run must reproduce exactly."""
    out = {k: v for k, v in record.items() if k not in TIMING}
    for key in ("epochs", "candidate_runs"):
        if key in out:
            out[key] = [{k: v for k, v in h.items() if k not in ("seconds", "eval_seconds")} for h in out[key]]
    return out


def tiny_profile(epochs: int) -> dict:
    """The smoke profile shrunk: 96 training images of 16x16 (48/48 split), batch 16, `epochs` search epochs."""
    profile = yaml.safe_load((PROFILE_DIR / "smoke.yaml").read_text())
    profile["profile"] = "tiny"
    profile["datasets"]["twoscale"] = {"train": 96, "test": 20, "size": 16, "classes": 4, "seed": 0}
    profile["search"]["resnet20"].update(epochs=epochs, batch_size=16, eval_batch_size=48)
    return profile
