"""Result records: atomic writes and provenance, shared by every command that writes a result."""

from __future__ import annotations

import fcntl
import glob
import hashlib
import json
import math
import os
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import poolnas
from poolnas.errors import WriteFailed


TEMPORARY = len("..XXXXXXXX.tmp")  # how much longer than its file's name a temporary's is (mkstemp: 8 random)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temporary file in the same directory, fsync, then rename: never a partial file."""
    write_together({path: data})


def write_together(files: dict) -> None:
    """Write every file ({path: bytes}) to a temporary beside it, and only when all are written rename them into
    place: an error or a kill before the renames leaves every old file as it was, so files read as a set (the
    CSVs of `aggregate`) are never a mix of new and stale ones. A failed write is a WriteFailed naming its file."""
    done: list[tuple[str, Path]] = []
    try:
        for path, data in files.items():
            path = Path(path)
            try:
                done.append((_temporary(path, data), path))
            except OSError as err:  # a full disk, a quota: say which file, not a traceback
                raise WriteFailed(path, err) from err
        for tmp, path in done:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in done:
            Path(tmp).unlink(missing_ok=True)
        raise


def _temporary(path: Path, data: bytes) -> str:
    """`data` in a new fsynced temporary beside `path` (deleted again when that fails); its name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; a result is an ordinary file
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def temporaries(path: str | os.PathLike, suffixes: tuple[str, ...] = (".tmp",)) -> list[Path]:
    """The temporaries made for `path` beside it (`.<name>.<random><suffix>`, as mkstemp and mkdtemp name them
    here), sorted: what an interrupted write of `path` may have left."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    return sorted(p for suffix in suffixes for p in path.parent.glob(f".{glob.escape(path.name)}.*{suffix}"))


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that interrupted atomic writes of `path` left (a kill -9 skips the cleanup).

    Call it when a run of the job that writes `path` starts: no other writer of the same file is running then."""
    stale = temporaries(path)
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return stale


ABANDONED_AFTER = 60  # seconds: a younger temporary may be one whose writer has not taken its lock yet


def hold(directory: Path) -> int | None:
    """An exclusive flock on `directory` (its descriptor, to close to release it), or None when it is held by
    another process or the file system does not support it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def remove_abandoned(target: str | os.PathLike) -> list[Path]:
    """Delete the temporary directories that killed writers of the directory `target` left (a kill -9 skips their
    cleanup; a Food101 cache is about 20 GB): `.<name>.*.tmp` (being built) and `.<name>.*.old` (being replaced).
    Unlike a record, a cache may be prepared by two processes at once, so a writer at work `hold`s its directory
    and only the ones nobody holds are deleted, and only after ABANDONED_AFTER seconds; where the file system
    does not support locks, none is."""
    removed = []
    for stale in temporaries(target, (".tmp", ".old")):
        try:
            young = time.time() - stale.stat().st_mtime < ABANDONED_AFTER
        except OSError:
            continue
        fd = None if young else hold(stale)
        if fd is not None:
            shutil.rmtree(stale, ignore_errors=True)
            os.close(fd)
            removed.append(stale)
    return removed


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def dumps(record: dict) -> str:
    """Compact, diff-friendly JSON: one line per top-level field, and per item of a list of dicts (epochs)."""

    def one(value):
        return json.dumps(value, separators=(",", ":"), allow_nan=False)

    lines = []
    for key, value in record.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            text = "[\n  " + ",\n  ".join(map(one, value)) + "\n ]"
        else:
            text = one(value)
        lines.append(f" {json.dumps(key)}: {text}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write a record atomically (see `dumps`); NaN and infinity are refused, never written."""
    atomic_write_text(path, dumps(obj) if isinstance(obj, dict) else json.dumps(obj, allow_nan=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    import io

    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


# --- run keys --------------------------------------------------------------------------------------------
# A run's key hashes everything that determines it: a checkpoint is resumed only into the run of its key, and a
# record whose fields and data give back its key was made on that data (analysis.consistency, for records that
# do not name their data parameters). One builder per kind, used by the runs and by that check alike.

def run_key(payload: dict) -> str:
    """A short hash of a JSON-able payload (sorted keys)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def train_key(files: dict, backbone: str, config: str, seed: int, hparams: dict, options: dict,
              variant: str | None = None) -> str:
    """The key of a standalone run; `files`: the dataset cache's arrays and their sha256 (meta.json)."""
    return run_key({"dataset": files, "backbone": backbone, "config": config, "seed": seed, "hparams": hparams,
                    "options": options, **({"variant": variant} if variant else {})})


def search_key(files: dict, method: str, models, configs, budget_models, backbone: str, seed: int, hparams: dict,
               options: dict, extension: dict | None = None) -> str:
    """The key of a search run; `extension`: {pooling: the config it searched on, rho} for dgconv and conet."""
    return run_key({"method": method, "models": models, "configs": configs, "budget_models": budget_models,
                    **(extension or {}), "dataset": files, "backbone": backbone, "seed": seed, "hparams": hparams,
                    "options": options})


def record_key(record: dict, files: dict, hparams: dict) -> str:
    """The key `record`'s run would have on the cache arrays `files`, run with `hparams` (unrounded: a search record
    holds them rounded): its own key exactly when it was made on those arrays."""
    r = record
    if r["kind"] == "train":
        return train_key(files, r["backbone"], r["config"], r["seed"], hparams, r["options"],
                         (r.get("variant") or {}).get("slug"))
    extension = {"pooling": r["pooling"]["config"], "rho": r.get("budget_rho")} if "pooling" in r else None
    return search_key(files, r["method"], r["models"], r["candidates"], r.get("budget_models"), r["backbone"],
                      r["seed"], hparams, r["options"], extension)


def nearest_even(x: float) -> int:
    """The even integer nearest x (a CONet width; ties as Python's round)."""
    return 2 * int(round(x / 2))


def sig(x, digits: int = 6):
    """Round every float in a nested structure to `digits` significant digits (tensors become lists)."""
    if type(x).__module__.split(".")[0] in ("torch", "numpy") and hasattr(x, "tolist"):  # np.float32 is no float
        x = x.tolist()
    if isinstance(x, float):
        return float(f"{x:.{digits}g}") if math.isfinite(x) else x
    if isinstance(x, dict):
        return {k: sig(v, digits) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [sig(v, digits) for v in x]
    return x


def _git(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """git in `cwd`, by default the checkout the package runs from."""
    return subprocess.run(["git", *args], cwd=cwd or Path(__file__).resolve().parent, capture_output=True, timeout=5)


def git_commit() -> str | None:
    """The commit of the checkout the package runs from, with '+dirty' when it has local changes."""
    try:
        sha = _git("rev-parse", "HEAD")
        if sha.returncode != 0:
            return None
        dirty = _git("status", "--porcelain", "--untracked-files=no")
        return sha.stdout.decode().strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return None


def git_dirty(cwd: Path | None = None) -> dict[str, Any] | None:
    """What '+dirty' means for this record: the tracked paths changed against HEAD and the sha256 of that diff
    (`git diff HEAD --binary`), so a reader can tell which code made it and check a saved patch against it; None
    on a clean checkout or outside git. (Untracked files are not code the package imports from its checkout.)"""
    try:
        paths = _git("diff", "HEAD", "--name-only", cwd=cwd)
        if paths.returncode != 0 or not paths.stdout.strip():
            return None
        diff = _git("diff", "HEAD", "--binary", cwd=cwd)
        return {"paths": sorted(paths.stdout.decode().split()), "diff_sha256": hashlib.sha256(diff.stdout).hexdigest()}
    except (OSError, subprocess.TimeoutExpired):
        return None


def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str | None:
    """The CPU's model name, from /proc/cpuinfo on Linux (platform.processor() is often empty there). Records are
    exact on one machine and may differ across CPUs (different kernels), so each record says which CPU made it."""
    try:
        with open(cpuinfo, encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def provenance(device=None) -> dict[str, Any]:
    """What produced a record: code version, libraries, machine. Written next to every result."""
    import torch  # here, not at module level: the analysis commands never need it

    return {
        "poolnas_version": poolnas.__version__,
        "git_commit": git_commit(),
        "git_dirty": git_dirty(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "device": str(device) if device is not None else None,
        "cuda_device_name": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "threads": torch.get_num_threads(),
    }
