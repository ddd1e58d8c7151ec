"""Per-epoch checkpoints: a run killed at any point resumes to exactly the record an uninterrupted run writes.

A checkpoint holds only tensors and plain containers and is read with `weights_only=True`, so a crafted file
cannot run code. It is resumed only when its run key (a hash of everything that determines the run) matches. A
file that cannot be read (truncated by a kill or a full disk) is set aside under a new name with a one-line
warning, and the run starts again from scratch: the record is still exact, only time is lost.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import torch

from poolnas.engine.runtime import log
from poolnas.records import atomic_torch_save, remove_stale_temporaries

FORMAT = 2  # bump when what a checkpoint holds changes: older files are then ignored, never misread


def run_key(payload: dict) -> str:
    """A short hash of everything that determines a run: a checkpoint is resumed only when it matches."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def default_path(out: str | Path) -> Path:
    """.checkpoints/<record name>.pt beside the record."""
    return Path(out).parent / ".checkpoints" / (Path(out).stem + ".pt")


class Checkpoint:
    """The checkpoint file of one run (identified by its key)."""

    def __init__(self, path: str | Path, key: str):
        self.path, self.key = Path(path), key

    def load(self) -> dict | None:
        """The saved state of this run, or None (no file, another run's file, or an unreadable one, set aside)."""
        remove_stale_temporaries(self.path)
        if not self.path.is_file():
            return None
        try:
            saved = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - any failure to read means: not a usable checkpoint
            aside = self._aside_name()
            self.path.rename(aside)
            log(f"warning: checkpoint {self.path} cannot be read ({type(err).__name__}); set aside as {aside.name}, "
                "starting this run from scratch")
            return None
        if not isinstance(saved, dict) or saved.get("format") != FORMAT or saved.get("key") != self.key:
            return None
        return saved["state"]

    def _aside_name(self) -> Path:
        """`<name>.unreadable-<time>`, with a counter when another file was set aside in the same second."""
        stem = f"{self.path.name}.unreadable-{time.strftime('%Y%m%dT%H%M%S')}"
        aside, n = self.path.with_name(stem), 1
        while aside.exists():
            aside, n = self.path.with_name(f"{stem}-{n}"), n + 1
        return aside

    def save(self, state: dict) -> None:
        atomic_torch_save({"format": FORMAT, "key": self.key, "state": state}, self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
