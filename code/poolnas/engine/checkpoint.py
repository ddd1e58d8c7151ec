"""Per-epoch checkpoints: a run killed at any point resumes to exactly the record an uninterrupted run writes.

A checkpoint holds only tensors and plain containers and is read with `weights_only=True`, so a crafted file
cannot run code. Its state is stored as the bytes of a torch file with their sha256 beside them, checked before
they are read: torch does not check its zip's CRCs, so one flipped byte in a tensor would otherwise resume into
another record. It is resumed only when it was made by this run (its run key: everything that determines the
run), this code (the package's source) and these settings (the whole resolved profile): other code or settings
may give tensors of other shapes or other numbers. A file that cannot be read (truncated by a kill or a full
disk), fails its checksum, or whose state does not fit the run (`resume`) is set aside under a new name with a
one-line warning, and the run starts again from scratch: the record is still exact, only time is lost.
"""

from __future__ import annotations

import hashlib
import io
import time
from functools import lru_cache
from pathlib import Path
from typing import Callable

import torch

import poolnas
from poolnas.engine.runtime import log
from poolnas.records import atomic_torch_save, remove_stale_temporaries, run_key

FORMAT = 3  # bump when what a checkpoint holds changes: older files are then ignored, never misread
SET_ASIDE = ".unreadable-YYYYmmddTHHMMSS-NN"  # the longest suffix `_aside_name` adds (argcheck checks the name)


@lru_cache(maxsize=1)
def code_digest() -> str:
    """The sha256 of the package's source (.py and .json files, by path): which code made a checkpoint."""
    package, h = Path(poolnas.__file__).parent, hashlib.sha256()
    for path in sorted(p for p in package.rglob("*") if p.suffix in (".py", ".json") and p.is_file()):
        h.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def default_path(out: str | Path) -> Path:
    """.checkpoints/<record name>.pt beside the record."""
    return Path(out).parent / ".checkpoints" / (Path(out).stem + ".pt")


class Checkpoint:
    """The checkpoint file of one run (identified by its key), made by this code under `settings`."""

    def __init__(self, path: str | Path, key: str, settings: dict | None = None):
        self.path, self.key = Path(path), key
        self.made_by = {"run": key, "code": code_digest(), "settings": run_key(settings or {})}

    def load(self) -> dict | None:
        """The saved state of this run, or None (no file, another run's, code's or settings' file, or an
        unreadable one, set aside)."""
        remove_stale_temporaries(self.path)
        if not self.path.is_file():
            return None
        try:
            saved = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - any failure to read means: not a usable checkpoint
            self.set_aside(f"cannot be read ({type(err).__name__})")
            return None
        if not isinstance(saved, dict) or saved.get("format") != FORMAT or not isinstance(saved.get("made_by"), dict):
            log(f"checkpoint {self.path} is of another format; not resumed, starting this run from scratch")
            return None
        other = [k for k, v in self.made_by.items() if saved["made_by"].get(k) != v]
        if other:  # kept: it is replaced after this run's first epoch
            what = {"run": "another run", "code": "other code", "settings": "other settings"}
            log(f"checkpoint {self.path} was made by {' and '.join(what[k] for k in other)}; not resumed, "
                "starting this run from scratch")
            return None
        payload = saved.get("payload")
        data = payload.numpy().tobytes() if isinstance(payload, torch.Tensor) else b""
        if hashlib.sha256(data).hexdigest() != saved.get("sha256"):
            self.set_aside("fails its checksum")
            return None
        try:
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - as above
            self.set_aside(f"cannot be read ({type(err).__name__})")
            return None

    def resume(self, build: Callable[[], object]):
        """(run, resumed): `build()` with this run's saved state when there is one that fits it. A state that does
        not fit (its load_state_dict fails: tensors of other shapes, missing entries) is set aside and the run is
        built again, from scratch: the failed load may have filled part of it, and `build` seeds its own init."""
        run = build()
        state = self.load()
        if state is None:
            return run, False
        try:
            run.load_state_dict(state)
        except Exception as err:  # noqa: BLE001 - any failure to load means: not this network's checkpoint
            self.set_aside(f"does not fit this run ({type(err).__name__}: {str(err).splitlines()[0][:120]})")
            return build(), False
        return run, True

    def set_aside(self, why: str) -> None:
        aside = self._aside_name()
        self.path.rename(aside)
        log(f"warning: checkpoint {self.path} {why}; set aside as {aside.name}, starting this run from scratch")

    def _aside_name(self) -> Path:
        """`<name>.unreadable-<time>`, with a counter when another file was set aside in the same second."""
        stem = f"{self.path.name}.unreadable-{time.strftime('%Y%m%dT%H%M%S')}"
        aside, n = self.path.with_name(stem), 1
        while aside.exists():
            aside, n = self.path.with_name(f"{stem}-{n}"), n + 1
        return aside

    def save(self, state: dict) -> None:
        buf = io.BytesIO()
        torch.save(state, buf)
        data = buf.getvalue()
        atomic_torch_save({"format": FORMAT, "made_by": self.made_by, "sha256": hashlib.sha256(data).hexdigest(),
                           "payload": torch.frombuffer(bytearray(data), dtype=torch.uint8)}, self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
